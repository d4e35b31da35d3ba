// Cost of reading a scenario: the YAML parse pass alone, the validation pass
// alone, and both together, on the shipped smoke.yaml and default.yaml texts
// (read once, outside the timed loop). `krepro run` pays this once per run,
// so the figure only matters for tools that compile many scenarios (bisect
// steps, the fuzzer corpus replay).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "harness/engine/registry.h"
#include "harness/engine/scenario.h"
#include "harness/util/check.h"
#include "harness/util/fs.h"

namespace krepro::engine {
namespace {

// The repository root: $KREPRO_SOURCE_DIR, else three levels above this file
// (CMake passes sources by absolute path, so __FILE__ is absolute).
std::string source_dir() {
  if (const char* env = std::getenv("KREPRO_SOURCE_DIR")) return env;
  std::string f = __FILE__;
  for (int i = 0; i < 3; ++i) f = f.substr(0, f.rfind('/'));
  return f;
}

const Registry& registry() {
  static const Registry r = [] {
    Registry x;
    register_builtin_actors(x);
    return x;
  }();
  return r;
}

std::string scenario_text(const std::string& name) {
  auto text = fs::read_file(source_dir() + "/scenarios/" + name + ".yaml");
  KREPRO_CHECK(text.has_value());
  return *text;
}

const char* scenario_name(int64_t i) { return i == 0 ? "smoke" : "default"; }

void BM_ParseScenario(benchmark::State& state) {
  const std::string name = scenario_name(state.range(0));
  const std::string text = scenario_text(name);
  for (auto _ : state) {
    auto raw = parse_scenario_text(text, name + ".yaml");
    benchmark::DoNotOptimize(raw);
  }
  state.SetLabel(name);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseScenario)->Arg(0)->Arg(1);

void BM_CompileScenario(benchmark::State& state) {
  const std::string name = scenario_name(state.range(0));
  auto raw = parse_scenario_text(scenario_text(name), name + ".yaml");
  KREPRO_CHECK(raw.has_value());
  const Registry& reg = registry();
  for (auto _ : state) {
    auto compiled = compile_scenario(*raw, reg);
    if (!compiled) {
      state.SkipWithError(compiled.error().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(compiled);
  }
  state.SetLabel(name);
}
BENCHMARK(BM_CompileScenario)->Arg(0)->Arg(1);

void BM_ParseAndCompileScenario(benchmark::State& state) {
  const std::string name = scenario_name(state.range(0));
  const std::string text = scenario_text(name);
  const Registry& reg = registry();
  for (auto _ : state) {
    auto raw = parse_scenario_text(text, name + ".yaml");
    KREPRO_CHECK(raw.has_value());
    auto compiled = compile_scenario(*raw, reg);
    KREPRO_CHECK(compiled.has_value());
    benchmark::DoNotOptimize(compiled);
  }
  state.SetLabel(name);
}
BENCHMARK(BM_ParseAndCompileScenario)->Arg(0)->Arg(1);

// The registry itself is built once per process; measured so that a slow
// parameter table shows up here and not as "scenario parsing".
void BM_RegisterBuiltinActors(benchmark::State& state) {
  for (auto _ : state) {
    Registry r;
    register_builtin_actors(r);
    benchmark::DoNotOptimize(r.actors().size());
  }
}
BENCHMARK(BM_RegisterBuiltinActors);

}  // namespace
}  // namespace krepro::engine
