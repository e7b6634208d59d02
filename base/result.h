// Errors as values across module boundaries: a Status says ok or what went
// wrong; Result<T> carries a value or a Status. Exceptions stay inside modules.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace p2p {

enum class ErrorCode {
  ok = 0,
  not_found,        // the thing asked for does not exist
  invalid_argument, // the caller passed something malformed (usage error)
  corruption,       // stored or received bytes fail a check
  verification,     // a signature or Merkle proof does not verify
  io,               // the operating system refused (files, LMDB)
  permission,       // wrong passphrase, read-only core, ...
  unsupported,      // a valid but unimplemented variant of a format
};

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }

  bool ok() const { return code_ == ErrorCode::ok; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool is_not_found() const { return code_ == ErrorCode::not_found; }
  // Lets P2P_TRY treat a Status and a Result the same way.
  const Status& status() const { return *this; }

 private:
  ErrorCode code_ = ErrorCode::ok;
  std::string message_;
};

inline Status error(ErrorCode code, std::string message) { return {code, std::move(message)}; }
inline Status not_found(std::string m) { return {ErrorCode::not_found, std::move(m)}; }
inline Status invalid_argument(std::string m) { return {ErrorCode::invalid_argument, std::move(m)}; }
inline Status corruption(std::string m) { return {ErrorCode::corruption, std::move(m)}; }
inline Status io_error(std::string m) { return {ErrorCode::io, std::move(m)}; }

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace p2p

// Propagate a failed Status from an expression that yields Status or Result.
#define P2P_TRY(expr)                                \
  do {                                               \
    auto p2p_try_s_ = (expr);                        \
    if (!p2p_try_s_.ok()) return p2p_try_s_.status(); \
  } while (0)
