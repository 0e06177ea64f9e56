// PublicKey: an OpenSSH public key as a user pastes it ("ssh-ed25519 AAAA...
// bob@laptop"), parsed and checked by hand so that a bad paste gets a sentence
// saying what is wrong instead of a library's error code.
//
// Value type and pure functions; safe to use from any thread.
#pragma once

#include <string>
#include <string_view>

#include "control/result.h"

namespace control {

struct PublicKey {
  std::string type;         // "ssh-ed25519", ...; equal to the type inside blob
  std::string blob;         // the decoded key bytes, in SSH wire format
  std::string base64;       // blob in canonical base64, as in authorized_keys
  std::string comment;      // may be empty; may contain spaces
  std::string fingerprint;  // "SHA256:..." exactly as ssh-keygen -l prints it

  // "type base64": the key without its comment, as stored and compared.
  std::string Authorized() const;
};

// Parses one line of a .pub file (or of authorized_keys without options):
// "TYPE BASE64 [COMMENT]". Surrounding blanks are ignored. Accepts
// ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of 2048 to 16384 bits,
// sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com, after
// checking that the key data is well formed for its type. Fails with
// kInvalid, with a message meant for the person who pasted it; a private key
// gets its own warning.
Result<PublicKey> ParsePublicKey(std::string_view line);

// "SHA256:" followed by the unpadded base64 of SHA-256(blob), the form
// ssh-keygen -l -E sha256 prints and users compare against.
std::string FingerprintOfBlob(std::string_view blob);

}  // namespace control
