// errno → symbolic name ("ENOSPC"), as summary.json keys errors by name.
#pragma once

#include <string>

namespace krepro {
// "ENOSPC" for ENOSPC; "E<n>" for a number glibc has no name for; "OK" for 0.
std::string errno_name(int err);
}  // namespace krepro
