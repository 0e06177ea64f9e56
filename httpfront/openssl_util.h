// OpenSSL and file helpers that the certificate stores share: certs.cc (the
// internal CA and operator files) and the ACME store. Internal to httpfront;
// not part of its interface.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/result.h"

namespace httpfront::ossl {

using Clock = std::chrono::system_clock;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;

// The impossible: a constant the linked OpenSSL refuses, or allocation
// failure. Logs `what` with OpenSSL's reason and aborts.
void Check(bool ok, const char* what);

// The reason of the most recent OpenSSL error, emptying the error queue.
std::string OpensslError();

// A DNS label as a VM name is one: 1-63 of [a-z0-9-], no '-' at either end.
bool IsDnsLabel(std::string_view s);
// Dot-separated DNS labels, at most 253 characters.
bool IsDnsName(std::string_view s);
std::string Lowercase(std::string s);

// A PEM file of at most 1 MiB; `what` names the file in the errors.
control::Result<std::string> ReadPemFile(const std::string& path, const std::string& what);

// Every certificate in `pem`, in order; none when it holds none.
std::vector<X509Ptr> ParseCertificates(const std::string& pem);
// The first private key in `pem`; null when none (never asks a passphrase).
KeyPtr ParsePrivateKey(const std::string& pem);
std::string ToPem(X509* cert);
std::string ToPem(EVP_PKEY* key);
KeyPtr NewP256Key();

// The epoch when `t` cannot be read.
Clock::time_point TimeOf(const ASN1_TIME* t);
// `t` in UTC by strftime's `format`, for messages and logs.
std::string FormatUtc(Clock::time_point t, const char* format);

// Writes `data` to `path` so that a reader sees the old file or the whole new
// one, never a part: a temp file, fsync, rename, fsync of the directory.
control::Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode);

}  // namespace httpfront::ossl
