// Small file helpers with Result errors; kernel files are read and written
// with one syscall each, as cgroupfs and procfs expect.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "harness/util/result.h"

namespace krepro::fs {

// Whole file (up to a limit) into a string.
Result<std::string> read_file(const std::string& path, size_t limit = 16 << 20);
// One write(2) of data; O_WRONLY without O_CREAT|O_TRUNC unless create.
Result<void> write_file(const std::string& path, std::string_view data, bool create = false);
Result<std::vector<std::string>> list_dir(const std::string& path);
bool exists(const std::string& path);
bool is_dir(const std::string& path);
// mkdir -p, mode 0755.
Result<void> make_dirs(const std::string& path);
std::string join(std::string_view a, std::string_view b);
// First line of a file with trailing whitespace trimmed.
Result<std::string> read_line(const std::string& path);
std::string trim(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep, bool skip_empty = true);

}  // namespace krepro::fs
