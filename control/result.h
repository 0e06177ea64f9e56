// Result<T>: a value or an Error, the one error type of the control plane.
//
// An Error carries the sentence a user sees ("vm name 'Foo' must be lowercase
// letters, digits and '-'") and its kind, which fronts map to exit codes
// (usage 2, failure 1) or HTTP statuses. Value type; not thread-safe to mutate.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace control {

enum class ErrorKind {
  kUsage,     // the command line itself is wrong (unknown command, bad flag)
  kInvalid,   // a value is wrong (bad name, bad key)
  kNotFound,  // the thing named does not exist or is not yours
  kConflict,  // the name is taken, the key is already registered
  kDenied,    // not allowed (registration closed, rate limit, budget)
  kInternal,  // our fault (database down); the message says to retry
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
};

inline Error UsageError(std::string m) { return {ErrorKind::kUsage, std::move(m)}; }
inline Error InvalidError(std::string m) { return {ErrorKind::kInvalid, std::move(m)}; }
inline Error NotFoundError(std::string m) { return {ErrorKind::kNotFound, std::move(m)}; }
inline Error ConflictError(std::string m) { return {ErrorKind::kConflict, std::move(m)}; }
inline Error DeniedError(std::string m) { return {ErrorKind::kDenied, std::move(m)}; }
inline Error InternalError(std::string m) { return {ErrorKind::kInternal, std::move(m)}; }

// Exit code a one-shot command ends with for this error: 2 for usage, else 1.
inline int ExitCode(const Error& e) { return e.kind == ErrorKind::kUsage ? 2 : 1; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

}  // namespace control
