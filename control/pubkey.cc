#include "control/pubkey.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

#include "control/names.h"

namespace control {
namespace {

// Longer than any key we accept (a 16384-bit RSA line is about 2.8 KB), short
// enough that a pasted file is refused before it is decoded.
constexpr size_t kMaxLineBytes = 8192;
constexpr size_t kMinRsaBits = 2048;
constexpr size_t kMaxRsaBits = 16384;

constexpr std::array<std::string_view, 7> kSupportedTypes = {
    "ssh-ed25519",        "ecdsa-sha2-nistp256",        "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "ssh-rsa",                   "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com"};

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const char kNotAKey[] =
    "that is not an OpenSSH public key: expected 'TYPE BASE64 [COMMENT]', like the contents of "
    "~/.ssh/id_ed25519.pub";

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// Splits off the first blank-separated token of an already trimmed string.
std::string_view NextToken(std::string_view* rest) {
  size_t end = 0;
  while (end < rest->size() && !IsBlank((*rest)[end])) ++end;
  std::string_view token = rest->substr(0, end);
  *rest = Trim(rest->substr(end));
  return token;
}

bool IsSupported(std::string_view type) {
  for (std::string_view t : kSupportedTypes) {
    if (t == type) return true;
  }
  return false;
}

std::string Base64Encode(std::string_view data, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(data[i]) << 16 |
                       static_cast<uint8_t>(data[i + 1]) << 8 | static_cast<uint8_t>(data[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(kBase64Alphabet[(v >> shift) & 63]);
  }
  const size_t left = data.size() - i;
  if (left > 0) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    if (left == 2) v |= static_cast<uint8_t>(data[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    if (left == 2) out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    if (pad) out.append(left == 1 ? "==" : "=");
  }
  return out;
}

// Strict: padded to a multiple of 4, no stray characters, and the unused bits
// zero, so that each blob has exactly one accepted spelling and two
// spellings of one key cannot both be registered.
std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (pad == 1 && in[in.size() - 2] == '=') ++pad;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    const char c = in[i];
    uint32_t v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else return std::nullopt;
    acc = acc << 6 | v;
    if (i % 4 == 3) {
      out.push_back(static_cast<char>(acc >> 16));
      out.push_back(static_cast<char>(acc >> 8));
      out.push_back(static_cast<char>(acc));
      acc = 0;
    }
  }
  if (pad == 2) {
    if (acc & 0xF) return std::nullopt;
    out.push_back(static_cast<char>(acc >> 4));
  } else if (pad == 1) {
    if (acc & 0x3) return std::nullopt;
    out.push_back(static_cast<char>(acc >> 10));
    out.push_back(static_cast<char>(acc >> 2));
  }
  return out;
}

// Reads the SSH wire format (RFC 4251 section 5) of a key blob.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  // uint32 big-endian length, then that many bytes.
  std::optional<std::string_view> String() {
    if (data_.size() < 4) return std::nullopt;
    const uint32_t len = static_cast<uint32_t>(static_cast<uint8_t>(data_[0])) << 24 |
                         static_cast<uint32_t>(static_cast<uint8_t>(data_[1])) << 16 |
                         static_cast<uint32_t>(static_cast<uint8_t>(data_[2])) << 8 |
                         static_cast<uint32_t>(static_cast<uint8_t>(data_[3]));
    if (len > data_.size() - 4) return std::nullopt;
    std::string_view s = data_.substr(4, len);
    data_.remove_prefix(4 + len);
    return s;
  }

  size_t left() const { return data_.size(); }

 private:
  std::string_view data_;
};

// Every failure below the line level reads the same to a user: the paste was
// damaged. The detail in parentheses helps whoever has to debug it.
Error Damaged(std::string_view type, std::string_view detail) {
  return InvalidError("the " + std::string(type) + " key data is damaged (" +
                      std::string(detail) + "); paste the whole line of the .pub file again");
}

// Number of significant bits of a non-negative SSH mpint, or nullopt if it is
// negative.
std::optional<size_t> MpintBits(std::string_view mpint) {
  if (!mpint.empty() && (static_cast<uint8_t>(mpint[0]) & 0x80)) return std::nullopt;
  while (!mpint.empty() && mpint[0] == 0) mpint.remove_prefix(1);
  if (mpint.empty()) return 0;
  size_t bits = (mpint.size() - 1) * 8;
  for (uint8_t top = static_cast<uint8_t>(mpint[0]); top != 0; top >>= 1) ++bits;
  return bits;
}

// A point that is not on its curve would only fail later, at every login,
// with no hint why; OpenSSL checks it now.
bool IsPointOnCurve(const char* group, std::string_view point) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return false;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                        const_cast<char*>(point.data()), point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) return false;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(raw, EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr), EVP_PKEY_CTX_free);
  return check && EVP_PKEY_public_check(check.get()) == 1;
}

// Checks the fields that follow the type string in `r`.
std::optional<Error> CheckKeyFields(std::string_view type, WireReader& r) {
  const bool sk = type.rfind("sk-", 0) == 0;
  if (type == "ssh-ed25519" || type == "sk-ssh-ed25519@openssh.com") {
    auto key = r.String();
    if (!key) return Damaged(type, "its public key is missing");
    if (key->size() != 32) {
      return Damaged(type, "its public key is " + std::to_string(key->size()) +
                               " bytes, not 32");
    }
  } else if (type == "ssh-rsa") {
    auto e = r.String();
    auto n = e ? r.String() : std::nullopt;
    if (!e || !n) return Damaged(type, "its exponent or modulus is missing");
    auto e_bits = MpintBits(*e);
    auto n_bits = MpintBits(*n);
    if (!e_bits || !n_bits) return Damaged(type, "it has a negative number");
    if (*e_bits < 2 || (static_cast<uint8_t>(e->back()) & 1) == 0) {
      return Damaged(type, "its public exponent is not an odd number above 1");
    }
    if (*n_bits < kMinRsaBits) {
      return InvalidError("RSA keys shorter than 2048 bits are refused (this one has " +
                          std::to_string(*n_bits) +
                          "); make one with ssh-keygen -t ed25519");
    }
    if (*n_bits > kMaxRsaBits) {
      return InvalidError("RSA keys longer than 16384 bits are refused (this one has " +
                          std::to_string(*n_bits) + "); make one with ssh-keygen -t ed25519");
    }
  } else {
    // ecdsa-sha2-nistpN and its security-key variant: curve name, then the
    // uncompressed point 0x04 || X || Y.
    const std::string_view curve = sk ? "nistp256" : type.substr(type.size() - 8);
    const char* group = curve == "nistp256" ? "P-256" : curve == "nistp384" ? "P-384" : "P-521";
    const size_t coord = curve == "nistp256" ? 32 : curve == "nistp384" ? 48 : 66;
    auto name = r.String();
    auto point = name ? r.String() : std::nullopt;
    if (!name || !point) return Damaged(type, "its curve or point is missing");
    if (*name != curve) {
      return Damaged(type, "its curve is " + ForMessage(*name) + ", not '" +
                               std::string(curve) + "'");
    }
    if (point->size() != 1 + 2 * coord || (*point)[0] != 0x04) {
      return Damaged(type, "its point is not an uncompressed " + std::string(curve) + " point");
    }
    if (!IsPointOnCurve(group, *point)) return Damaged(type, "its point is not on the curve");
  }
  if (sk && !r.String()) return Damaged(type, "its security key application is missing");
  if (r.left() != 0) {
    return Damaged(type, std::to_string(r.left()) + " unexpected bytes follow the key");
  }
  return std::nullopt;
}

// The first token is not a type we accept: say whether it is a key of
// another type, a key with authorized_keys options in front, or not a key.
Error ExplainUnknownType(std::string_view line, std::string_view first,
                         std::string_view second) {
  for (std::string_view t : kSupportedTypes) {
    for (size_t at = line.find(t); at != std::string_view::npos; at = line.find(t, at + 1)) {
      const size_t end = at + t.size();
      if (at > 0 && IsBlank(line[at - 1]) && end < line.size() && IsBlank(line[end])) {
        return InvalidError("remove the options before '" + std::string(t) +
                            "' (like from=\"...\" or no-pty); paste only 'TYPE BASE64 "
                            "[COMMENT]', like the contents of ~/.ssh/id_ed25519.pub");
      }
    }
  }
  // Every OpenSSH key blob starts with a 4-byte length below 2^24, which
  // base64 spells "AAAA".
  bool type_like = !first.empty() && first.size() <= 64;
  for (char c : first) {
    type_like = type_like && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                              c == '@' || c == '.');
  }
  if (type_like && second.rfind("AAAA", 0) == 0) {
    return InvalidError("unsupported key type " + ForMessage(first) +
                        "; use ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa");
  }
  return InvalidError(kNotAKey);
}

}  // namespace

std::string PublicKey::Authorized() const { return type + " " + base64; }

std::string FingerprintOfBlob(std::string_view blob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(blob.data(), blob.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return "";  // only when OpenSSL cannot allocate; no fingerprint matches ""
  }
  return "SHA256:" +
         Base64Encode(std::string_view(reinterpret_cast<const char*>(digest), len), false);
}

Result<PublicKey> ParsePublicKey(std::string_view line) {
  if (line.size() > kMaxLineBytes) {
    return InvalidError("that text is " + std::to_string(line.size()) +
                        " bytes, too long for a public key (at most " +
                        std::to_string(kMaxLineBytes) +
                        "); paste only the one line of the .pub file");
  }
  line = Trim(line);
  if (line.empty()) {
    return InvalidError("no public key given; paste the contents of your .pub file, like "
                        "~/.ssh/id_ed25519.pub");
  }
  if (line.find("PRIVATE KEY") != std::string_view::npos ||
      line.rfind("PuTTY-User-Key-File", 0) == 0) {
    return InvalidError(
        "that is a private key, which must never leave your computer: paste the public key "
        "from the matching .pub file (like ~/.ssh/id_ed25519.pub) instead, and consider this "
        "private key exposed and replace it with a new one from ssh-keygen -t ed25519");
  }
  if (line.rfind("---- BEGIN SSH2 PUBLIC KEY", 0) == 0) {
    return InvalidError("that is a public key in RFC 4716 format; convert it with "
                        "'ssh-keygen -i -f FILE' and paste the line that prints");
  }
  if (line.find_first_of("\r\n") != std::string_view::npos) {
    return InvalidError("that text has several lines; paste one public key, on one line, like "
                        "the contents of ~/.ssh/id_ed25519.pub");
  }

  std::string_view rest = line;
  const std::string_view type = NextToken(&rest);
  const std::string_view b64 = NextToken(&rest);
  const std::string_view comment = rest;
  if (!IsSupported(type)) return ExplainUnknownType(line, type, b64);
  if (b64.empty()) {
    return InvalidError("the " + std::string(type) +
                        " key has no base64 data after its type; paste the whole line of the "
                        ".pub file");
  }
  std::optional<std::string> blob = Base64Decode(b64);
  if (!blob) {
    return InvalidError("the " + std::string(type) +
                        " key data is not valid base64 (was it cut or changed while copying?); "
                        "paste the whole line of the .pub file again");
  }

  WireReader reader(*blob);
  auto inner_type = reader.String();
  if (!inner_type) return Damaged(type, "it does not start with its type");
  if (*inner_type != type) {
    return InvalidError("the key line says '" + std::string(type) + "' but its data is a " +
                        ForMessage(*inner_type) +
                        " key; paste the .pub file unchanged");
  }
  if (auto err = CheckKeyFields(type, reader)) return *err;
  if (!IsPrintableUtf8(comment)) {
    return InvalidError("the key's comment " + ForMessage(comment) +
                        " contains control characters or invalid UTF-8; remove the comment or "
                        "use printable text");
  }

  PublicKey key;
  key.type = std::string(type);
  key.fingerprint = FingerprintOfBlob(*blob);
  key.blob = std::move(*blob);
  key.base64 = std::string(b64);  // canonical, since decoding is strict
  key.comment = std::string(comment);
  return key;
}

}  // namespace control
