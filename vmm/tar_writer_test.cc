#include "vmm/tar_writer.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace vmm {
namespace {

std::string Sh(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

TEST(TarWriter, RealTarExtractsEveryFileExactly) {
  std::string script(5000, 'x');
  script += "\necho done\n";
  auto tar = MakeTar({{"exed/hostname", "brave-otter\n"}, {"exed/setup.sh", script, 0755}, {"top", ""}});
  ASSERT_TRUE(tar.ok()) << tar.error().message;
  EXPECT_EQ(tar->size() % 10240, 0u);
  char dir[] = "/tmp/exed-tar-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string d = dir;
  std::ofstream(d + "/c.tar", std::ios::binary) << *tar;
  EXPECT_EQ(Sh("tar -tf " + d + "/c.tar"), "exed/\nexed/hostname\nexed/setup.sh\ntop\n");
  Sh("mkdir " + d + "/x && tar -xf " + d + "/c.tar -C " + d + "/x");
  std::stringstream got;
  got << std::ifstream(d + "/x/exed/setup.sh").rdbuf();
  EXPECT_EQ(got.str(), script);
  EXPECT_EQ(Sh("stat -c %a " + d + "/x/exed/setup.sh"), "755\n");
  // busybox tar is what the guest uses
  if (std::system("test -x /bin/busybox") == 0) {
    EXPECT_EQ(Sh("busybox tar -tf " + d + "/c.tar"), "exed/\nexed/hostname\nexed/setup.sh\ntop\n");
  }
  std::system(("rm -rf " + d).c_str());
}

TEST(TarWriter, RefusesPathsThatEscapeOrDoNotFit) {
  EXPECT_FALSE(MakeTar({{"/etc/passwd", ""}}).ok());
  EXPECT_FALSE(MakeTar({{"exed/../../x", ""}}).ok());
  EXPECT_FALSE(MakeTar({{std::string(120, 'a'), ""}}).ok());
  EXPECT_TRUE(MakeTar({}).ok());
}

}  // namespace
}  // namespace vmm
