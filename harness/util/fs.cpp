#include "harness/util/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "harness/util/unique_fd.h"

namespace krepro::fs {

Result<std::string> read_file(const std::string& path, size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  std::string out;
  char buf[8192];
  while (out.size() < limit) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<void> write_file(const std::string& path, std::string_view data, bool create) {
  int flags = O_WRONLY | O_CLOEXEC;
  if (create) flags |= O_CREAT | O_TRUNC;
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd) return errno_error("open " + path);
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) return errno_error("write " + path);
  if (static_cast<size_t>(n) != data.size()) return make_error(EIO, "short write " + path);
  return {};
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return errno_error("opendir " + path);
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    out.push_back(std::move(n));
  }
  ::closedir(d);
  return out;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<void> make_dirs(const std::string& path) {
  if (path.empty()) return {};
  std::string cur;
  for (const auto& part : split(path, '/')) {
    cur += "/" + part;
    if (path[0] != '/' && cur.size() == part.size() + 1) cur = part;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("mkdir " + cur);
  }
  return {};
}

std::string join(std::string_view a, std::string_view b) {
  std::string out(a);
  if (!out.empty() && out.back() != '/') out += '/';
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  out += b;
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r'))
    --e;
  return std::string(s.substr(b, e - b));
}

Result<std::string> read_line(const std::string& path) {
  auto r = read_file(path, 4096);
  if (!r) return Unexpected(std::move(r.error()));
  auto s = *r;
  auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return trim(s);
}

std::vector<std::string> split(std::string_view s, char sep, bool skip_empty) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) p = s.size();
    if (!(skip_empty && p == start)) out.emplace_back(s.substr(start, p - start));
    start = p + 1;
  }
  return out;
}

}  // namespace krepro::fs
