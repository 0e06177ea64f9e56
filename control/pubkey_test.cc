#include "control/pubkey.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace control {
namespace {

namespace fs = std::filesystem;

// --- Building blocks for hand-made keys. ---

std::string WireString(std::string_view s) {
  std::string out(4, '\0');
  out[0] = static_cast<char>(s.size() >> 24);
  out[1] = static_cast<char>(s.size() >> 16);
  out[2] = static_cast<char>(s.size() >> 8);
  out[3] = static_cast<char>(s.size());
  out.append(s);
  return out;
}

std::string B64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(n);
  return out;
}

std::string Line(std::string_view type, std::string_view blob, std::string_view comment = "") {
  std::string line = std::string(type) + " " + B64(blob);
  if (!comment.empty()) line += " " + std::string(comment);
  return line;
}

std::string Ed25519Blob(std::string_view type = "ssh-ed25519") {
  return WireString(type) + WireString(std::string(32, '\x42'));
}

// An RSA blob whose modulus has exactly `bits` bits (it is not a real key;
// only its size matters here).
std::string RsaBlob(size_t bits) {
  std::string n((bits + 7) / 8, '\x01');
  n[0] = static_cast<char>(1 << ((bits - 1) % 8));
  if (static_cast<unsigned char>(n[0]) & 0x80) n.insert(0, 1, '\0');  // keep it positive
  return WireString("ssh-rsa") + WireString(std::string("\x01\x00\x01", 3)) + WireString(n);
}

std::string MessageOf(std::string_view line) {
  auto r = ParsePublicKey(line);
  if (r.ok()) return "<accepted>";
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid) << r.error().message;
  return r.error().message;
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- Real keys from ssh-keygen. ---

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pubkey_test.XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs `cmd` with /bin/sh; returns its stdout, or nullopt if it failed.
std::optional<std::string> Sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  return pclose(p) == 0 ? std::optional(out) : std::nullopt;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PubkeyWithSshKeygen : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Sh("command -v ssh-keygen")) GTEST_SKIP() << "ssh-keygen is not installed";
    ASSERT_FALSE(dir_.path().empty()) << "could not make a temporary directory";
  }

  // Generates a key with `args` (e.g. "-t ed25519"); returns its .pub path.
  fs::path Generate(const std::string& name, const std::string& args) {
    const fs::path key = dir_.path() / name;
    auto out = Sh("ssh-keygen -q " + args + " -N '' -C 'alice@laptop  two spaces' -f '" +
                  key.string() + "' </dev/null");
    EXPECT_TRUE(out.has_value()) << "ssh-keygen " << args << " failed";
    return key.string() + ".pub";
  }

  // The fingerprint ssh-keygen itself prints for a .pub file.
  std::string KeygenFingerprint(const fs::path& pub) {
    auto out = Sh("ssh-keygen -l -E sha256 -f '" + pub.string() + "'");
    if (!out) return "<ssh-keygen -l failed>";
    std::istringstream fields(*out);
    std::string bits, fingerprint;
    fields >> bits >> fingerprint;
    return fingerprint;
  }

  fs::path WriteFile(const std::string& name, const std::string& text) {
    const fs::path path = dir_.path() / name;
    std::ofstream(path) << text << "\n";
    return path;
  }

  // Parses a generated key and checks every field against the file and
  // against ssh-keygen's own fingerprint.
  void ExpectAccepted(const fs::path& pub, std::string_view type) {
    const std::string text = ReadFile(pub);
    auto r = ParsePublicKey(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.error().message;
    EXPECT_EQ(r->type, type);
    EXPECT_EQ(r->comment, "alice@laptop  two spaces");
    EXPECT_EQ(r->fingerprint, KeygenFingerprint(pub));
    EXPECT_EQ(r->fingerprint, FingerprintOfBlob(r->blob));
    EXPECT_EQ(r->Authorized() + " " + r->comment + "\n", text);
    EXPECT_EQ(B64(r->blob), r->base64);
  }

  TempDir dir_;
};

TEST_F(PubkeyWithSshKeygen, Ed25519) {
  ExpectAccepted(Generate("ed", "-t ed25519"), "ssh-ed25519");
}

TEST_F(PubkeyWithSshKeygen, Ecdsa) {
  ExpectAccepted(Generate("ec256", "-t ecdsa -b 256"), "ecdsa-sha2-nistp256");
  ExpectAccepted(Generate("ec384", "-t ecdsa -b 384"), "ecdsa-sha2-nistp384");
  ExpectAccepted(Generate("ec521", "-t ecdsa -b 521"), "ecdsa-sha2-nistp521");
}

TEST_F(PubkeyWithSshKeygen, Rsa3072) {
  ExpectAccepted(Generate("rsa", "-t rsa -b 3072"), "ssh-rsa");
}

TEST_F(PubkeyWithSshKeygen, Rsa1024IsRefused) {
  const std::string text = ReadFile(Generate("rsa1024", "-t rsa -b 1024"));
  EXPECT_EQ(MessageOf(text),
            "RSA keys shorter than 2048 bits are refused (this one has 1024); make one with "
            "ssh-keygen -t ed25519");
}

TEST_F(PubkeyWithSshKeygen, SecurityKeyTypesMatchSshKeygen) {
  // No hardware token here, so build the sk blobs by hand; ssh-keygen still
  // fingerprints them. The sk-ecdsa point is taken from a real P-256 key.
  auto ec = ParsePublicKey(ReadFile(Generate("ec", "-t ecdsa -b 256")));
  ASSERT_TRUE(ec.ok()) << ec.error().message;
  const std::string point = ec->blob.substr(4 + 19 + 4 + 8 + 4);
  ASSERT_EQ(point.size(), 65u);

  const std::string sk_ed = "sk-ssh-ed25519@openssh.com";
  const std::string sk_ec = "sk-ecdsa-sha2-nistp256@openssh.com";
  for (const std::string& line :
       {Line(sk_ed, Ed25519Blob(sk_ed) + WireString("ssh:"), "yubikey"),
        Line(sk_ec, WireString(sk_ec) + WireString("nistp256") + WireString(point) +
                        WireString("ssh:"), "yubikey")}) {
    auto r = ParsePublicKey(line);
    ASSERT_TRUE(r.ok()) << line << ": " << r.error().message;
    EXPECT_EQ(r->comment, "yubikey");
    EXPECT_EQ(r->fingerprint, KeygenFingerprint(WriteFile("sk.pub", line))) << line;
  }
  // The application string is part of the format.
  EXPECT_TRUE(Contains(MessageOf(Line(sk_ed, Ed25519Blob(sk_ed))), "application is missing"));
}

TEST_F(PubkeyWithSshKeygen, PrivateKeyGetsItsOwnWarning) {
  Generate("leak", "-t ed25519");
  const std::string private_key = ReadFile(dir_.path() / "leak");
  ASSERT_TRUE(Contains(private_key, "-----BEGIN OPENSSH PRIVATE KEY-----"));
  for (const std::string& text : {private_key, std::string("-----BEGIN OPENSSH PRIVATE KEY-----"),
                                  std::string("-----BEGIN RSA PRIVATE KEY-----")}) {
    const std::string msg = MessageOf(text);
    EXPECT_TRUE(Contains(msg, "that is a private key")) << msg;
    EXPECT_TRUE(Contains(msg, ".pub")) << msg;
    EXPECT_TRUE(Contains(msg, "exposed")) << msg;
  }
}

TEST(ParsePublicKey, TrimsAndKeepsTheComment) {
  const std::string blob = Ed25519Blob();
  auto r = ParsePublicKey("  \t" + Line("ssh-ed25519", blob, "bob@work  laptop") + " \r\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->type, "ssh-ed25519");
  EXPECT_EQ(r->blob, blob);
  EXPECT_EQ(r->comment, "bob@work  laptop");
  EXPECT_EQ(r->Authorized(), "ssh-ed25519 " + B64(blob));

  r = ParsePublicKey(Line("ssh-ed25519", blob));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->comment, "");
  r = ParsePublicKey("ssh-ed25519\t" + B64(blob) + "\tlaptop");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->comment, "laptop");
}

TEST(FingerprintOfBlob, KnownValue) {
  // SHA-256 of the empty string, base64 without padding.
  EXPECT_EQ(FingerprintOfBlob(""), "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
}

TEST(ParsePublicKey, RefusesTextThatIsNotAKey) {
  const std::string not_a_key =
      "that is not an OpenSSH public key: expected 'TYPE BASE64 [COMMENT]', like the contents "
      "of ~/.ssh/id_ed25519.pub";
  EXPECT_EQ(MessageOf("hello world"), not_a_key);
  EXPECT_EQ(MessageOf("AAAAC3NzaC1lZDI1NTE5AAAAI"), not_a_key);
  EXPECT_TRUE(Contains(MessageOf(""), "no public key given"));
  EXPECT_TRUE(Contains(MessageOf(" \n "), "no public key given"));
}

TEST(ParsePublicKey, RefusesUnsupportedTypes) {
  EXPECT_EQ(MessageOf(Line("ssh-dss", WireString("ssh-dss") + WireString("p"))),
            "unsupported key type 'ssh-dss'; use ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa");
  const std::string cert = "ssh-ed25519-cert-v01@openssh.com";
  EXPECT_TRUE(Contains(MessageOf(Line(cert, WireString(cert) + WireString("x"))),
                       "unsupported key type '" + cert + "'"));
}

TEST(ParsePublicKey, RefusesAuthorizedKeysOptions) {
  const std::string msg =
      MessageOf("from=\"10.0.0.1, 10.0.0.2\",no-pty " + Line("ssh-ed25519", Ed25519Blob(), "c"));
  EXPECT_TRUE(Contains(msg, "remove the options before 'ssh-ed25519'")) << msg;
}

TEST(ParsePublicKey, RefusesOtherFormatsAndSeveralLines) {
  EXPECT_TRUE(Contains(MessageOf("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC "
                                 "KEY ----"),
                       "ssh-keygen -i -f FILE"));
  const std::string one = Line("ssh-ed25519", Ed25519Blob());
  EXPECT_TRUE(Contains(MessageOf(one + "\n" + one), "several lines"));
  EXPECT_TRUE(Contains(MessageOf(std::string(9000, 'A')), "too long for a public key"));
}

TEST(ParsePublicKey, RefusesBadBase64) {
  const std::string good = B64(Ed25519Blob());
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519"), "no base64 data"));
  std::string bad = good;
  bad[10] = '!';
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519 " + bad), "not valid base64"));
  // Cut short while copying.
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519 " + good.substr(0, good.size() - 1)),
                       "not valid base64"));
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519 " + good.substr(0, good.size() - 4)), "damaged"));
  // Padding in the middle, and non-zero unused bits (a second spelling).
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519 AA==" + good), "not valid base64"));
  // 52 bytes end in "X==", where X carries 2 bits of data and 4 unused ones.
  std::string padded = B64(Ed25519Blob() + "x");
  ASSERT_EQ(padded.substr(padded.size() - 2), "==");
  char& last = padded[padded.size() - 3];
  ASSERT_EQ(last, 'A');  // 'x' = 0x78: its low 2 bits (00) then the 4 unused ones
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519 " + padded), "unexpected bytes"));
  last = 'B';
  EXPECT_TRUE(Contains(MessageOf("ssh-ed25519 " + padded), "not valid base64"));
}

TEST(ParsePublicKey, RefusesMismatchedOrDamagedData) {
  EXPECT_EQ(MessageOf(Line("ssh-rsa", Ed25519Blob())),
            "the key line says 'ssh-rsa' but its data is a 'ssh-ed25519' key; paste the .pub "
            "file unchanged");
  EXPECT_EQ(MessageOf(Line("ssh-ed25519", WireString("ssh-ed25519") + WireString("short"))),
            "the ssh-ed25519 key data is damaged (its public key is 5 bytes, not 32); paste "
            "the whole line of the .pub file again");
  EXPECT_TRUE(Contains(MessageOf(Line("ssh-ed25519", Ed25519Blob() + "xx")),
                       "2 unexpected bytes follow the key"));
  // A length field that runs past the end.
  EXPECT_TRUE(Contains(MessageOf(Line("ssh-ed25519", std::string("\0\0\0\xff", 4) + "ssh")),
                       "damaged"));
}

TEST(ParsePublicKey, RsaSizeBoundaries) {
  EXPECT_TRUE(ParsePublicKey(Line("ssh-rsa", RsaBlob(2048))).ok());
  EXPECT_EQ(MessageOf(Line("ssh-rsa", RsaBlob(2047))),
            "RSA keys shorter than 2048 bits are refused (this one has 2047); make one with "
            "ssh-keygen -t ed25519");
  EXPECT_TRUE(ParsePublicKey(Line("ssh-rsa", RsaBlob(16384))).ok());
  EXPECT_TRUE(Contains(MessageOf(Line("ssh-rsa", RsaBlob(16385))), "longer than 16384 bits"));
  // An even exponent is not RSA.
  const std::string n = RsaBlob(2048).substr(4 + 7 + 4 + 3);
  EXPECT_TRUE(Contains(MessageOf(Line("ssh-rsa", WireString("ssh-rsa") + WireString("\x02") + n)),
                       "exponent"));
}

TEST(ParsePublicKey, RefusesEcdsaPointOffTheCurve) {
  std::string point(65, '\x07');
  point[0] = 0x04;
  const std::string type = "ecdsa-sha2-nistp256";
  EXPECT_EQ(MessageOf(Line(type, WireString(type) + WireString("nistp256") + WireString(point))),
            "the ecdsa-sha2-nistp256 key data is damaged (its point is not on the curve); "
            "paste the whole line of the .pub file again");
  EXPECT_TRUE(Contains(
      MessageOf(Line(type, WireString(type) + WireString("nistp384") + WireString(point))),
      "its curve is 'nistp384', not 'nistp256'"));
}

TEST(ParsePublicKey, RefusesControlCharactersInTheComment) {
  const std::string msg = MessageOf(Line("ssh-ed25519", Ed25519Blob(), "evil\x1b[2J"));
  EXPECT_TRUE(Contains(msg, "comment 'evil\\x1b[2J' contains control characters")) << msg;
}

}  // namespace
}  // namespace control
