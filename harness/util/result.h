// krepro::Result<T>: a value or an Error (errno + context chain).
//
// g++ 12 ships <expected> only under -std=c++23, and the project builds as
// C++20, so this is a small hand-written Expected. It is kept an alias so it
// can become std::expected<T, Error> when the toolchain allows.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "harness/util/check.h"

namespace krepro {

// An error: the errno that caused it (0 when none) and a chain of context
// strings, outermost first, e.g. "mkdir /sys/fs/cgroup/memory/x: ENOSPC".
class Error {
 public:
  Error() = default;
  Error(int err, std::string what) : errno_(err) { context_.push_back(std::move(what)); }

  // Error from the current errno.
  static Error from_errno(std::string what) { return Error(errno, std::move(what)); }

  int err() const { return errno_; }
  // Adds an outer layer of context.
  Error& wrap(std::string outer) {
    context_.insert(context_.begin(), std::move(outer));
    return *this;
  }
  const std::vector<std::string>& context() const { return context_; }
  // "outer: inner: ENOSPC (No space left on device)".
  std::string message() const;

 private:
  int errno_ = 0;
  std::vector<std::string> context_;
};

// Marker to build a failed Result: `return Unexpected(Error(...))`.
struct Unexpected {
  explicit Unexpected(Error e) : error(std::move(e)) {}
  Error error;
};

inline Unexpected make_error(int err, std::string what) {
  return Unexpected(Error(err, std::move(what)));
}
inline Unexpected errno_error(std::string what) {
  return Unexpected(Error::from_errno(std::move(what)));
}

template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}         // NOLINT
  Expected(Unexpected u) : v_(std::in_place_index<1>, std::move(u.error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    KREPRO_CHECK_MSG(has_value(), error().message());
    return std::get<0>(v_);
  }
  const T& value() const& {
    KREPRO_CHECK_MSG(has_value(), error().message());
    return std::get<0>(v_);
  }
  T&& value() && {
    KREPRO_CHECK_MSG(has_value(), error().message());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    KREPRO_CHECK(!has_value());
    return std::get<1>(v_);
  }
  Error& error() {
    KREPRO_CHECK(!has_value());
    return std::get<1>(v_);
  }
  T value_or(T other) const { return has_value() ? std::get<0>(v_) : std::move(other); }

 private:
  std::variant<T, Error> v_;
};

template <>
class Expected<void> {
 public:
  Expected() = default;
  Expected(Unexpected u) : err_(std::move(u.error)), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { KREPRO_CHECK_MSG(ok_, err_.message()); }
  const Error& error() const {
    KREPRO_CHECK(!ok_);
    return err_;
  }
  Error& error() {
    KREPRO_CHECK(!ok_);
    return err_;
  }

 private:
  Error err_;
  bool ok_ = true;
};

template <class T>
using Result = Expected<T>;

// Propagates a failed Result with added context.
#define KREPRO_TRY_CTX(expr, ctx)                                   \
  do {                                                              \
    auto&& krepro_try_r_ = (expr);                                  \
    if (!krepro_try_r_) {                                           \
      return ::krepro::Unexpected(krepro_try_r_.error().wrap(ctx)); \
    }                                                               \
  } while (0)

#define KREPRO_TRY(expr)                                             \
  do {                                                               \
    auto&& krepro_try_r_ = (expr);                                   \
    if (!krepro_try_r_) {                                            \
      return ::krepro::Unexpected(std::move(krepro_try_r_.error())); \
    }                                                                \
  } while (0)

}  // namespace krepro
