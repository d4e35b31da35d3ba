// libFuzzer: what a guest writes to its two serial lines, as the host reads
// it (LineSplitter -> GuestStream / ConsoleWatch -> base64 of the archive).
// The guest kernel is the thing under test: it may print anything.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "harness/vm/console.h"
#include "harness/vm/guest_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Feed in two uneven chunks: lines split across reads must join.
  size_t cut = size ? data[0] % (size + 1) : 0;
  krepro::vm::LineSplitter split;
  krepro::vm::GuestStream g(4096);
  krepro::vm::ConsoleWatch watch;
  auto take = [&](std::string_view chunk) {
    for (const auto& l : split.feed(chunk)) {
      if (l.find('\n') != std::string::npos) std::abort();
      g.feed_line(l);
      watch.feed_line(l);
    }
  };
  take(bytes.substr(0, cut));
  take(bytes.substr(cut));
  std::string rest = split.flush();
  g.feed_line(rest);
  watch.feed_line(rest);
  watch.finish();
  if (watch.tail().size() > krepro::vm::ConsoleWatch::kTailLines) std::abort();
  if (g.result_base64().size() > 4096) std::abort();
  if (g.setup_failures().size() > krepro::vm::GuestStream::kMaxSetupFailures) std::abort();
  std::string out;
  if (krepro::vm::base64_decode(g.result_base64(), &out) && out.size() > g.result_base64().size())
    std::abort();
  return 0;
}
