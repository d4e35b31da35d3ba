#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "harness/util/check.h"
#include "harness/util/errno_name.h"
#include "harness/util/result.h"

namespace krepro {

namespace detail {
void check_failed(const char* file, int line, const char* expr, const std::string& msg) {
  std::fprintf(stderr, "krepro: CHECK failed at %s:%d: %s%s%s\n", file, line, expr,
               msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

std::string errno_name(int err) {
  if (err == 0) return "OK";
  // strerrorname_np (glibc >= 2.32) gives the symbolic name without a table
  // of our own.
  if (const char* n = strerrorname_np(err)) return n;
  return "E" + std::to_string(err);
}

std::string Error::message() const {
  std::string out;
  for (size_t i = 0; i < context_.size(); ++i) {
    if (i) out += ": ";
    out += context_[i];
  }
  if (errno_ != 0) {
    if (!out.empty()) out += ": ";
    out += errno_name(errno_);
    out += " (";
    out += std::strerror(errno_);
    out += ")";
  }
  return out;
}

}  // namespace krepro
