// Scenarios, in two passes as oomd's config compiler does: parse YAML into
// plain structs that remember where each value came from, then validate and
// compile against the registry's parameter tables. Nothing touches the
// kernel until both passes succeed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/engine/params.h"
#include "harness/util/result.h"

namespace krepro::engine {

class Registry;
struct ActorType;

// Where a value came from: file:line:column (1-based) or "--set".
struct Origin {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;
};

struct RawValue {
  std::string text;
  Origin origin;
};

struct RawActor {
  std::string type;
  std::string name;  // defaults to type
  Origin origin;
  std::map<std::string, RawValue> params;
};

struct RawPhase {
  std::string name;
  Origin origin;
  std::optional<RawValue> duration;
  std::vector<RawActor> actors;
};

struct RawScenario {
  std::string file;
  std::string name;
  std::string description;
  std::optional<RawValue> duration;
  std::map<std::string, RawValue> options;
  std::vector<RawPhase> phases;
};

// Parse pass. Errors carry "file:line:column: message".
Result<RawScenario> parse_scenario_text(const std::string& text, const std::string& file);
Result<RawScenario> parse_scenario_file(const std::string& path);

// Applies one --set key=value: "duration", "scale", an option name,
// "PHASE.duration", "ACTOR.param" (every phase) or "PHASE.ACTOR.param".
Result<void> apply_set(RawScenario& s, const std::string& assignment);

struct CompiledActor {
  const ActorType* type = nullptr;
  std::string name;
  Params params;
};

struct CompiledPhase {
  std::string name;
  int64_t duration_ns = 0;  // 0: until every actor with a count is done
  std::vector<CompiledActor> actors;
};

struct CompiledScenario {
  std::string file;
  std::string name;
  std::string description;
  int64_t duration_ns = 0;  // hard cap for the whole run
  Params options;
  std::vector<CompiledPhase> phases;
  bool global_limits() const { return options.get_bool("global_limits"); }
};

// The scenario-level option table (global_limits, cgroup_version, ...).
const std::vector<ParamSpec>& scenario_option_specs();

// Validation pass: every key known, every value typed and in range.
Result<CompiledScenario> compile_scenario(const RawScenario& raw, const Registry& reg);

}  // namespace krepro::engine
