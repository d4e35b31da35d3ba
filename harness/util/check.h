// CHECK macros for broken invariants: print a clear message and abort.
#pragma once

#include <string>

namespace krepro::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* expr,
                               const std::string& msg);
}  // namespace krepro::detail

#define KREPRO_CHECK(cond)                                                      \
  do {                                                                          \
    if (!(cond)) ::krepro::detail::check_failed(__FILE__, __LINE__, #cond, {}); \
  } while (0)

#define KREPRO_CHECK_MSG(cond, msg)                                                \
  do {                                                                             \
    if (!(cond)) ::krepro::detail::check_failed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)
