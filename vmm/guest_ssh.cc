#include "vmm/guest_ssh.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <libssh/libssh.h>

namespace vmm {

namespace {

struct SessionCloser {
  void operator()(ssh_session s) const {
    ssh_disconnect(s);
    ssh_free(s);
  }
};
using Session = std::unique_ptr<ssh_session_struct, SessionCloser>;

std::string KeyLine(ssh_key key) {
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) return "";
  std::string line = std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " + b64;
  ssh_string_free_char(b64);
  return line;
}

control::Result<Session> Connect(const GuestEndpoint& ep, std::chrono::milliseconds timeout, std::string* host_key) {
  Session s(ssh_new());
  long secs = std::max<long>(1, static_cast<long>(timeout.count() / 1000));
  int port = ep.port;
  int verbosity = SSH_LOG_NOLOG;
  ssh_options_set(s.get(), SSH_OPTIONS_HOST, "127.0.0.1");
  ssh_options_set(s.get(), SSH_OPTIONS_PORT, &port);
  ssh_options_set(s.get(), SSH_OPTIONS_USER, ep.user.c_str());
  ssh_options_set(s.get(), SSH_OPTIONS_TIMEOUT, &secs);
  ssh_options_set(s.get(), SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
  // No Nagle: the gateway relays small packets (keystrokes, SFTP
  // acknowledgements, window adjustments) that should not wait for a delayed
  // ACK, as OpenSSH's own client does for interactive sessions.
  int nodelay = 1;
  ssh_options_set(s.get(), SSH_OPTIONS_NODELAY, &nodelay);
  // The ciphers in OpenSSH's client order, so the guest does the work a
  // direct `ssh` would make it do: ChaCha20 first, which costs a TCG guest
  // (no AES-NI of its own) ~30 % less CPU per byte than AES-CTR. libssh
  // 0.10's default order starts with ChaCha20 as well; this pins it.
  const char* ciphers = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
                        "aes128-gcm@openssh.com,aes256-gcm@openssh.com";
  ssh_options_set(s.get(), SSH_OPTIONS_CIPHERS_C_S, ciphers);
  ssh_options_set(s.get(), SSH_OPTIONS_CIPHERS_S_C, ciphers);
  // One host key type, so the pinned key is the one every connection sees.
  ssh_options_set(s.get(), SSH_OPTIONS_HOSTKEYS, "ssh-ed25519");
  ssh_options_set(s.get(), SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
  ssh_options_set(s.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
  if (ssh_connect(s.get()) != SSH_OK) {
    return control::InternalError(fmt::format("guest sshd on port {} not answering: {}", ep.port, ssh_get_error(s.get())));
  }
  ssh_key server_key = nullptr;
  if (ssh_get_server_publickey(s.get(), &server_key) != SSH_OK) {
    return control::InternalError("guest presented no host key");
  }
  *host_key = KeyLine(server_key);
  ssh_key_free(server_key);
  if (!ep.pinned_host_key.empty() && *host_key != ep.pinned_host_key) {
    return control::DeniedError(fmt::format("guest host key mismatch: pinned {}..., presented {}...",
                                            ep.pinned_host_key.substr(0, 40), host_key->substr(0, 40)));
  }
  ssh_key priv = nullptr;
  if (ssh_pki_import_privkey_file(ep.key_path.c_str(), nullptr, nullptr, nullptr, &priv) != SSH_OK) {
    return control::InternalError("cannot read the gateway key " + ep.key_path);
  }
  int rc = ssh_userauth_publickey(s.get(), nullptr, priv);
  ssh_key_free(priv);
  if (rc != SSH_AUTH_SUCCESS) {
    return control::InternalError(fmt::format("guest sshd refused the gateway key for user {}", ep.user));
  }
  return s;
}

}  // namespace

control::Result<std::string> ProbeGuest(const GuestEndpoint& ep, std::chrono::milliseconds timeout) {
  std::string host_key;
  auto s = Connect(ep, timeout, &host_key);
  if (!s) return s.error();
  return host_key;
}

control::Result<ssh_session> ConnectGuest(const GuestEndpoint& ep, std::chrono::milliseconds timeout) {
  std::string host_key;
  auto s = Connect(ep, timeout, &host_key);
  if (!s) return s.error();
  return s->release();
}

control::Result<int> RunInGuest(const GuestEndpoint& ep, const std::string& command,
                                std::chrono::milliseconds timeout) {
  std::string host_key;
  auto s = Connect(ep, timeout, &host_key);
  if (!s) return s.error();
  ssh_channel ch = ssh_channel_new(s->get());
  if (!ch || ssh_channel_open_session(ch) != SSH_OK || ssh_channel_request_exec(ch, command.c_str()) != SSH_OK) {
    if (ch) ssh_channel_free(ch);
    return control::InternalError("cannot run a command in the guest: " + std::string(ssh_get_error(s->get())));
  }
  char buf[1024];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ssh_channel_is_eof(ch) && std::chrono::steady_clock::now() < deadline) {
    if (ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 500) < 0) break;  // output is not needed, only the end
  }
  int status = ssh_channel_get_exit_status(ch);
  ssh_channel_close(ch);
  ssh_channel_free(ch);
  return status;
}

control::Result<std::string> EnsureGatewayKey(const std::string& dir, std::string* private_key_path) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ::chmod(dir.c_str(), 0700);
  std::string path = dir + "/id_ed25519";
  *private_key_path = path;
  if (!std::filesystem::exists(path)) {
    ssh_key key = nullptr;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) return control::InternalError("cannot make gateway key");
    mode_t old = ::umask(077);
    int rc = ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, (path + ".tmp").c_str());
    ::umask(old);
    ssh_key_free(key);
    if (rc != SSH_OK || std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
      return control::InternalError("cannot write gateway key " + path);
    }
  }
  ssh_key priv = nullptr;
  if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &priv) != SSH_OK) {
    return control::InternalError("cannot read gateway key " + path);
  }
  ssh_key pub = nullptr;
  ssh_pki_export_privkey_to_pubkey(priv, &pub);
  std::string line = KeyLine(pub) + " exed-gateway";
  ssh_key_free(pub);
  ssh_key_free(priv);
  return line;
}

}  // namespace vmm
