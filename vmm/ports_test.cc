#include "vmm/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>

namespace vmm {
namespace {

// Holds a listening socket on 127.0.0.1:port (0: any) for the test's life.
class Listener {
 public:
  explicit Listener(int port = 0) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && ::listen(fd_, 1) == 0;
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
  }
  ~Listener() { ::close(fd_); }
  bool ok() const { return ok_; }
  int port() const { return port_; }

 private:
  int fd_;
  bool ok_ = false;
  int port_ = 0;
};

TEST(PickFreePort, KernelChosenPortBindsAndAvoidsTaken) {
  auto p = PickFreePort({});
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_GT(*p, 0);
  Listener l(*p);  // it really is free
  EXPECT_TRUE(l.ok());

  // Whatever the kernel would hand out next, a taken set containing it is
  // honoured: take the port it just gave and many more.
  std::set<int> taken;
  for (int i = 0; i < 20; ++i) {
    auto q = PickFreePort(taken);
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(taken.count(*q), 0u);
    taken.insert(*q);
  }
}

TEST(PickFreePort, RangeGivesTheLowestFreeUntakenPort) {
  // A port known to be in use: a listener the kernel placed.
  Listener busy;
  ASSERT_TRUE(busy.ok());
  int b = busy.port();
  // The range [b, b+2]: b is bound, b+1 is taken in the database.
  auto p = PickFreePort({b + 1}, {b, b + 2});
  if (!p.ok()) GTEST_SKIP() << "port " << b + 2 << " busy on this machine";
  EXPECT_EQ(*p, b + 2);
}

TEST(PickFreePort, ExhaustedRangeIsDenied) {
  Listener busy;
  ASSERT_TRUE(busy.ok());
  auto p = PickFreePort({busy.port() + 1}, {busy.port(), busy.port() + 1});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().kind, control::ErrorKind::kDenied);
  EXPECT_NE(p.error().message.find("no free port left"), std::string::npos);
}

TEST(PickFreePort, BadInputsAreErrors) {
  EXPECT_FALSE(PickFreePort({}, {}, "localhost").ok());
  EXPECT_FALSE(PickFreePort({}, {10, 5}).ok());
  EXPECT_FALSE(PickFreePort({}, {1, 70000}).ok());
}

}  // namespace
}  // namespace vmm
