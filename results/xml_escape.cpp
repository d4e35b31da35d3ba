#include "results/xml_escape.h"

namespace krepro::results {

namespace {
// Length of a valid UTF-8 sequence at s[i], or 0.
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  return n;
}
}  // namespace

std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    switch (c) {
      case '&':
        o += "&amp;";
        ++i;
        continue;
      case '<':
        o += "&lt;";
        ++i;
        continue;
      case '>':
        o += "&gt;";
        ++i;
        continue;
      case '"':
        o += "&quot;";
        ++i;
        continue;
      case '\'':
        o += "&#39;";
        ++i;
        continue;
      default:
        break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20) {
      if (c == '\n' || c == '\t') o += c;
      ++i;
      continue;
    }
    size_t n = utf8_len(s, i);
    if (n == 0) {
      o += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    o.append(s.substr(i, n));
    i += n;
  }
  return o;
}

}  // namespace krepro::results
