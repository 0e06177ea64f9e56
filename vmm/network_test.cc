#include "vmm/network.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace vmm {
namespace {

NetSpec Net() {
  NetSpec n;
  n.ssh_host_port = 40022;
  n.web_host_port = 40080;
  n.guest_web_port = 8000;
  n.passt_socket = "/state/vms/42/passt.sock";
  n.passt_log = "/state/vms/42/passt.log";
  n.passt_pid_file = "/state/vms/42/passt.pid";
  return n;
}

TEST(PasstArgs, ForwardsLoopbackPortsAndNeverMapsTheGateway) {
  EXPECT_EQ(PasstArgs(Net(), "/usr/bin/passt"),
            (std::vector<std::string>{
                "/usr/bin/passt", "--foreground", "--quiet", "--one-off", "--no-map-gw",
                "--udp-ports", "none", "--socket", "/state/vms/42/passt.sock",
                "--tcp-ports", "127.0.0.1/40022:22", "--tcp-ports", "127.0.0.1/40080:8000",
                "--log-file", "/state/vms/42/passt.log", "--pid", "/state/vms/42/passt.pid"}));
  NetSpec bare = Net();
  bare.passt_log.clear();
  bare.passt_pid_file.clear();
  EXPECT_EQ(PasstArgs(bare, "passt").size(), 13u);
}

TEST(QemuNetArgs, StreamNetdevToPasstsSocket) {
  EXPECT_EQ(QemuNetArgs(Net()),
            (std::vector<std::string>{
                "-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=/state/vms/42/passt.sock",
                "-device", "virtio-net-device,netdev=n0"}));
}

TEST(PasstIdentity, IsTheSocketArgumentPair) {
  EXPECT_EQ(PasstIdentity(Net()), (std::vector<std::string>{"--socket", "/state/vms/42/passt.sock"}));
}

TEST(CheckNetSpec, NamesWhatIsWrong) {
  EXPECT_EQ(CheckNetSpec(Net()), std::nullopt);
  NetSpec n = Net();
  n.ssh_host_port = 0;
  EXPECT_EQ(CheckNetSpec(n), "host ports 0 and 40080 must be between 1 and 65535");
  n = Net();
  n.guest_ssh_port = 70000;
  EXPECT_EQ(CheckNetSpec(n), "guest ports 70000 and 8000 must be between 1 and 65535");
  n = Net();
  n.passt_socket = "/" + std::string(107, 's');
  EXPECT_NE(CheckNetSpec(n)->find("longer than 107 bytes"), std::string::npos);
  n.passt_socket = "/" + std::string(106, 's');
  EXPECT_EQ(CheckNetSpec(n), std::nullopt);
}

TEST(RemoveStaleSocket, RemovesSocketsOnlyAndIsIdempotent) {
  std::string dir = ::testing::TempDir() + "/network_test_" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  std::string path = dir + "/passt.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);  // the file stays behind, as after a passt that died

  EXPECT_TRUE(SocketExists(path));
  EXPECT_TRUE(RemoveStaleSocket(path).ok());
  EXPECT_FALSE(SocketExists(path));
  EXPECT_TRUE(RemoveStaleSocket(path).ok());

  std::ofstream(path) << "not a socket";
  EXPECT_FALSE(SocketExists(path));
  auto st = RemoveStaleSocket(path);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, path + " exists and is not a socket; not removing it");
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace vmm
