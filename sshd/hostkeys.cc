#include "sshd/hostkeys.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <libssh/libssh.h>
#include <spdlog/spdlog.h>

namespace sshd {

namespace fs = std::filesystem;

control::Result<std::vector<std::string>> EnsureHostKeys(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return control::InternalError("cannot create host key directory " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  struct Kind {
    const char* file;
    ssh_keytypes_e type;
    int bits;
  };
  const Kind kinds[] = {{"ssh_host_ed25519_key", SSH_KEYTYPE_ED25519, 0},
                        {"ssh_host_ecdsa_key", SSH_KEYTYPE_ECDSA_P256, 256},
                        {"ssh_host_rsa_key", SSH_KEYTYPE_RSA, 3072}};
  std::vector<std::string> paths;
  for (const auto& k : kinds) {
    std::string path = dir + "/" + k.file;
    if (!fs::exists(path)) {
      ssh_key key = nullptr;
      if (ssh_pki_generate(k.type, k.bits, &key) != SSH_OK) {
        return control::InternalError(std::string("cannot generate host key ") + k.file);
      }
      // Write to a temp name, then rename: a crash never leaves half a key.
      std::string tmp = path + ".tmp";
      mode_t old = ::umask(077);
      int rc = ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, tmp.c_str());
      ::umask(old);
      ssh_key_free(key);
      if (rc != SSH_OK || ::rename(tmp.c_str(), path.c_str()) != 0) {
        return control::InternalError("cannot write host key " + path + ": " + std::strerror(errno));
      }
      spdlog::info("event=hostkey-created path={}", path);
    }
    ::chmod(path.c_str(), 0600);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace sshd
