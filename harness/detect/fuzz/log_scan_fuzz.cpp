// libFuzzer: scan_text and SignatureMatcher on arbitrary text.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "harness/detect/log_scan.h"
#include "harness/detect/signatures.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  {
    std::istringstream in(text);
    std::ostringstream out, err;
    int rc = krepro::detect::scan_text(in, "fuzz", (size & 1) != 0, out, err);
    if (rc < 0 || rc > 2) std::abort();
  }
  // The matcher directly, line by line, with bounded groups.
  static krepro::detect::SignatureMatcher* matcher = new krepro::detect::SignatureMatcher();
  std::string_view s(text);
  while (!s.empty()) {
    size_t nl = s.find('\n');
    for (const auto& ev : matcher->feed(s.substr(0, nl), 1.0)) {
      if (ev.hit.extra_lines.size() > krepro::detect::SignatureMatcher::kMaxExtraLines) {
        std::abort();
      }
    }
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  matcher->finish();
  return 0;
}
