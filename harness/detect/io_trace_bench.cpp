// Parser and analyzer throughput on real trace_pipe lines: the reader thread
// must keep up with a busy device (tens of thousands of requests a second,
// two lines each) at a small fraction of one core.
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>
#include <vector>

#include "harness/detect/io_trace.h"

namespace {

std::vector<std::string> capture() {
  std::ifstream f(std::string(KREPRO_TRACE_TESTDATA) + "/fsync_capture.txt");
  std::vector<std::string> out;
  std::string l;
  while (std::getline(f, l)) out.push_back(l);
  return out;
}

void BM_ParseTraceLine(benchmark::State& st) {
  auto lines = capture();
  size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size() + 1;
  for (auto _ : st) {
    for (const auto& l : lines) {
      krepro::detect::TraceLine t;
      benchmark::DoNotOptimize(krepro::detect::parse_trace_line(l, &t));
      benchmark::DoNotOptimize(t);
    }
  }
  st.SetItemsProcessed(st.iterations() * lines.size());
  st.SetBytesProcessed(st.iterations() * bytes);
}
BENCHMARK(BM_ParseTraceLine);

void BM_AnalyzerAddLine(benchmark::State& st) {
  auto lines = capture();
  krepro::detect::IoTraceAnalyzer a(3874'000'000'000);
  for (auto _ : st) {
    for (const auto& l : lines) a.add_line(l);
  }
  st.SetItemsProcessed(st.iterations() * lines.size());
}
BENCHMARK(BM_AnalyzerAddLine);

}  // namespace
