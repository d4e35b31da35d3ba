#include "harness/engine/scenario.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "harness/engine/registry.h"
#include "harness/util/fs.h"

namespace krepro::engine {

std::string Origin::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

constexpr size_t kMaxScenarioBytes = 1 << 20;
constexpr int kMaxNesting = 64;

// Validation errors carry no errno: the message says it all.
Unexpected fail(const Origin& o, const std::string& msg) {
  return make_error(0, o.str() + ": " + msg);
}

Origin origin_of(const std::string& file, const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  Origin o;
  o.file = file;
  if (m.line >= 0) {
    o.line = m.line + 1;
    o.column = m.column + 1;
  }
  return o;
}

// yaml-cpp's parser recurses once per nesting level; a 100k-deep input
// would overflow the stack before its own depth guard. Flow nesting and
// block sequences started on one line ("- - - -") are the only ways to
// nest deeply in a file of sane size, so both are bounded before parsing.
std::optional<std::string> precheck(const std::string& text, int* bad_line) {
  int depth = 0, line = 1;
  char quote = 0;
  bool comment = false;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\0') {
      *bad_line = line;
      return "binary data (NUL byte); a scenario is YAML text";
    }
    if (c == '\n') {
      ++line;
      comment = false;
      if (quote == '\'' || quote == '"') {
        // Multi-line quoted scalars are legal; keep the quote open.
      }
      line_start = i + 1;
      // Count "- " / "? " indicators at the start of the next line.
      int seq = 0;
      size_t j = line_start;
      while (j < text.size() && (text[j] == ' ' || text[j] == '-' || text[j] == '?')) {
        if ((text[j] == '-' || text[j] == '?') && j + 1 < text.size() &&
            (text[j + 1] == ' ' || text[j + 1] == '\t'))
          ++seq;
        ++j;
      }
      if (seq > kMaxNesting || j - line_start > 4096) {
        *bad_line = line;
        return "nesting deeper than " + std::to_string(kMaxNesting) + " levels";
      }
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c == quote)
        quote = 0;
      else if (c == '\\' && quote == '"')
        ++i;
      continue;
    }
    if (c == '#' && (i == line_start || text[i - 1] == ' ' || text[i - 1] == '\t')) {
      comment = true;
    } else if (c == '"' || c == '\'') {
      // A quote opens a scalar only at a token start.
      if (i == line_start || std::string(" \t[{,:-").find(text[i - 1]) != std::string::npos)
        quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) {
        *bad_line = line;
        return "nesting deeper than " + std::to_string(kMaxNesting) + " levels";
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

Result<std::string> scalar(const std::string& file, const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) {
    return fail(origin_of(file, n), what + " must be a single value, not a " +
                                        (n.IsMap()        ? "mapping"
                                         : n.IsSequence() ? "list"
                                                          : "null"));
  }
  return n.Scalar();
}

Result<RawValue> raw_value(const std::string& file, const YAML::Node& n, const std::string& what) {
  auto s = scalar(file, n, what);
  KREPRO_TRY(s);
  return RawValue{*s, origin_of(file, n)};
}

Result<RawActor> parse_actor(const std::string& file, const YAML::Node& n) {
  RawActor a;
  a.origin = origin_of(file, n);
  if (!n.IsMap()) return fail(a.origin, "an actor must be a mapping with a 'type'");
  for (const auto& kv : n) {
    auto key = scalar(file, kv.first, "a key");
    KREPRO_TRY(key);
    if (*key == "type" || *key == "name") {
      auto v = scalar(file, kv.second, "'" + *key + "'");
      KREPRO_TRY(v);
      (*key == "type" ? a.type : a.name) = *v;
      continue;
    }
    if (a.params.count(*key))
      return fail(origin_of(file, kv.first), "duplicate key '" + *key + "'");
    auto v = raw_value(file, kv.second, "actor parameter '" + *key + "'");
    KREPRO_TRY(v);
    a.params[*key] = std::move(*v);
  }
  if (a.type.empty()) return fail(a.origin, "actor has no 'type'");
  if (a.name.empty()) a.name = a.type;
  return a;
}

Result<RawPhase> parse_phase(const std::string& file, const YAML::Node& n) {
  RawPhase p;
  p.origin = origin_of(file, n);
  if (!n.IsMap()) return fail(p.origin, "a phase must be a mapping with 'name' and 'actors'");
  for (const auto& kv : n) {
    auto key = scalar(file, kv.first, "a key");
    KREPRO_TRY(key);
    if (*key == "name") {
      auto v = scalar(file, kv.second, "'name'");
      KREPRO_TRY(v);
      p.name = *v;
    } else if (*key == "duration") {
      auto v = raw_value(file, kv.second, "'duration'");
      KREPRO_TRY(v);
      p.duration = std::move(*v);
    } else if (*key == "actors") {
      if (!kv.second.IsSequence())
        return fail(origin_of(file, kv.second), "'actors' must be a list");
      for (const auto& an : kv.second) {
        auto a = parse_actor(file, an);
        KREPRO_TRY(a);
        p.actors.push_back(std::move(*a));
      }
    } else {
      return fail(origin_of(file, kv.first),
                  "unknown key '" + *key + "' in a phase (known: name, duration, actors)");
    }
  }
  if (p.name.empty()) return fail(p.origin, "phase has no 'name'");
  return p;
}

}  // namespace

Result<RawScenario> parse_scenario_text(const std::string& text, const std::string& file) {
  RawScenario s;
  s.file = file;
  Origin whole{file, 0, 0};
  if (text.size() > kMaxScenarioBytes) return fail(whole, "file larger than 1 MiB; not a scenario");
  int bad_line = 0;
  if (auto e = precheck(text, &bad_line)) return fail(Origin{file, bad_line, 1}, *e);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Origin o{file, e.mark.line >= 0 ? e.mark.line + 1 : 0,
             e.mark.column >= 0 ? e.mark.column + 1 : 0};
    return fail(o, "YAML syntax error: " + e.msg);
  }
  if (!root || root.IsNull())
    return fail(whole, "empty scenario (expected a mapping with 'phases')");
  if (!root.IsMap()) return fail(origin_of(file, root), "a scenario must be a mapping");
  for (const auto& kv : root) {
    auto key = scalar(file, kv.first, "a key");
    KREPRO_TRY(key);
    const YAML::Node& v = kv.second;
    if (*key == "name" || *key == "description") {
      auto t = scalar(file, v, "'" + *key + "'");
      KREPRO_TRY(t);
      (*key == "name" ? s.name : s.description) = *t;
    } else if (*key == "duration") {
      auto t = raw_value(file, v, "'duration'");
      KREPRO_TRY(t);
      s.duration = std::move(*t);
    } else if (*key == "options") {
      if (!v.IsMap()) return fail(origin_of(file, v), "'options' must be a mapping");
      for (const auto& o : v) {
        auto ok = scalar(file, o.first, "a key");
        KREPRO_TRY(ok);
        auto ov = raw_value(file, o.second, "option '" + *ok + "'");
        KREPRO_TRY(ov);
        s.options[*ok] = std::move(*ov);
      }
    } else if (*key == "phases") {
      if (!v.IsSequence()) return fail(origin_of(file, v), "'phases' must be a list");
      for (const auto& pn : v) {
        auto p = parse_phase(file, pn);
        KREPRO_TRY(p);
        s.phases.push_back(std::move(*p));
      }
    } else {
      return fail(
          origin_of(file, kv.first),
          "unknown key '" + *key + "' (known: name, description, duration, options, phases)");
    }
  }
  if (s.phases.empty()) return fail(whole, "scenario has no phases");
  return s;
}

Result<RawScenario> parse_scenario_file(const std::string& path) {
  if (fs::is_dir(path)) return make_error(EISDIR, path + ": is a directory, not a scenario file");
  auto text = fs::read_file(path, kMaxScenarioBytes + 1);
  if (!text) return Unexpected(text.error().wrap(path));
  return parse_scenario_text(*text, path);
}

Result<void> apply_set(RawScenario& s, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return make_error(0, "--set " + assignment + ": expected key=value");
  std::string key = assignment.substr(0, eq);
  RawValue val{assignment.substr(eq + 1), Origin{"--set " + assignment, 0, 0}};
  if (key == "duration") {
    s.duration = val;
    return {};
  }
  auto parts = fs::split(key, '.', false);
  if (parts.size() == 1) {
    s.options[key] = val;  // validated with the option table
    return {};
  }
  bool matched = false;
  if (parts.size() == 2) {
    for (auto& p : s.phases) {
      if (p.name == parts[0] && parts[1] == "duration") {
        p.duration = val;
        matched = true;
      }
      for (auto& a : p.actors) {
        if (a.name == parts[0]) {
          a.params[parts[1]] = val;
          matched = true;
        }
      }
    }
  } else if (parts.size() == 3) {
    for (auto& p : s.phases) {
      if (p.name != parts[0]) continue;
      for (auto& a : p.actors) {
        if (a.name == parts[1]) {
          a.params[parts[2]] = val;
          matched = true;
        }
      }
    }
  }
  if (!matched)
    return make_error(0, "--set " + assignment + ": no phase or actor named '" + parts[0] +
                             "' (use ACTOR.param, PHASE.ACTOR.param or PHASE.duration)");
  return {};
}

const std::vector<ParamSpec>& scenario_option_specs() {
  static const std::vector<ParamSpec> kSpecs = {
      {"global_limits", ParamType::kBool, "false", 0, 0,
       "the scenario pushes kernel-global limits (memcg IDs, tens of thousands of dying "
       "cgroups): refuses to run on the host unless allow_host is set; meant for krepro vm"},
      {"allow_host", ParamType::kBool, "false", 0, 0,
       "run a global_limits scenario on this host anyway (--set allow_host=true)"},
      {"scale", ParamType::kDouble, "1", 0.001, 10000, "multiplies every count and phase duration"},
      {"cgroup_version",
       ParamType::kEnum,
       "auto",
       0,
       0,
       "memory cgroup hierarchy for churn and workloads: v1 memory, cgroup2, or auto (v1 if "
       "mounted)",
       {"auto", "v1", "v2"}},
      {"cgroup_parent", ParamType::kString, "", 0, 0,
       "where the run cgroup goes instead of the cgroup krepro runs in: absolute paths separated "
       "by ':', each a directory inside one hierarchy (/sys/fs/cgroup/pids/ci: that hierarchy "
       "only) or at most one cgroup path outside every mount (/ or /ci: that path in every "
       "hierarchy not named otherwise)"},
      {"trust_user_kmsg", ParamType::kBool, "false", 0, 0,
       "count /dev/kmsg records of user facility (for testing krepro itself)"},
      {"stall_threshold", ParamType::kDuration, "100ms", 1e6, 3600e9,
       "an I/O op slower than this is a stall event"},
      {"netns_free_limit", ParamType::kDuration, "60s", 1e9, 3600e9,
       "a dropped namespace not freed after this is a finding"},
      {"link_delete_deadline", ParamType::kDuration, "1s", 1e6, 600e9,
       "an explicit veth delete slower than this is suspect (as net/pmtu.sh does)"},
      {"netdev_unregister_timeout", ParamType::kDuration, "0s", 0, 3600e9,
       "set net.core.netdev_unregister_timeout_secs for the run (0: leave it), restored after"},
      {"teardown_wait", ParamType::kDuration, "30s", 0, 3600e9,
       "after the last phase, wait this long for dropped namespaces to be freed"},
      {"scratch_device",
       ParamType::kEnum,
       "none",
       0,
       0,
       "loop: put the scratch folder on ext4 on loop devices krepro sets up (needed by "
       "blkio-throttle)",
       {"none", "loop"}},
      {"scratch_size", ParamType::kSize, "1GiB", 64.0 * (1 << 20), 64.0 * (1u << 30),
       "size of the loop scratch filesystem"},
      {"scratch_dir", ParamType::kString, "", 0, 0,
       "where job and workload files go (default: a krepro-<run-id> folder in the run folder)"},
      {"dstate_threshold", ParamType::kDuration, "10s", 1e9, 3600e9,
       "a task in D state longer than this is reported"},
      {"memcg_drain_wait", ParamType::kDuration, "5s", 0, 3600e9,
       "after the run, watch dying memcgs drain for up to this long"},
      {"io_trace", ParamType::kBool, "true", 0, 0,
       "collect block, writeback and dirty-throttle tracepoints in a tracefs instance of krepro's "
       "own"},
      {"kprobe_functions", ParamType::kString, "", 0, 0,
       "comma-separated kernel functions to time with kprobe+kretprobe pairs (e.g. mempool_alloc)"},
      {"kprobe_threshold", ParamType::kDuration, "10ms", 1e3, 60e9,
       "a probed function call slower than this is listed"},
      {"sample_interval", ParamType::kDuration, "1s", 100e6, 60e9,
       "interval of the time series (churn rates, dying memcgs, pending namespaces)"},
  };
  return kSpecs;
}

namespace {

Result<Params> compile_params(const std::vector<ParamSpec>& specs,
                              const std::map<std::string, RawValue>& raw, const Origin& where,
                              const std::string& what, double scale) {
  Params out;
  std::set<std::string> known;
  for (const auto& sp : specs) known.insert(sp.name);
  for (const auto& [k, v] : raw) {
    if (!known.count(k)) {
      std::string all;
      for (const auto& sp : specs) all += (all.empty() ? "" : ", ") + sp.name;
      return fail(v.origin.line ? v.origin : where,
                  "unknown parameter '" + k + "' for " + what + " (known: " + all + ")");
    }
  }
  for (const auto& sp : specs) {
    auto it = raw.find(sp.name);
    const std::string& text = it != raw.end() ? it->second.text : sp.default_value;
    ParamValue v;
    if (auto e = parse_param(sp, text, &v)) {
      Origin o = it != raw.end() ? it->second.origin : where;
      return fail(o, what + " parameter '" + sp.name + "': " + *e);
    }
    if (sp.scalable && scale != 1.0) {
      if (auto* i = std::get_if<int64_t>(&v)) {
        if (*i > 0) *i = std::max<int64_t>(1, std::llround(static_cast<double>(*i) * scale));
      }
    }
    out.set(sp.name, std::move(v));
  }
  return out;
}

}  // namespace

Result<CompiledScenario> compile_scenario(const RawScenario& raw, const Registry& reg) {
  CompiledScenario c;
  c.file = raw.file;
  c.name = raw.name.empty() ? fs::split(fs::split(raw.file, '/').back(), '.').front() : raw.name;
  c.description = raw.description;
  Origin whole{raw.file, 0, 0};
  auto opts = compile_params(scenario_option_specs(), raw.options, whole, "scenario option", 1.0);
  KREPRO_TRY(opts);
  c.options = std::move(*opts);
  double scale = c.options.get_double("scale");
  const std::string& parent = c.options.get_string("cgroup_parent");
  if (!parent.empty() && (parent[0] != '/' || parent.find("/../") != std::string::npos))
    return fail(raw.options.at("cgroup_parent").origin, "cgroup_parent must be an absolute path");

  auto scaled_duration = [&](const RawValue& v, const std::string& what) -> Result<int64_t> {
    int64_t ns = 0;
    if (auto e = parse_duration_ns(v.text, &ns)) return fail(v.origin, what + ": " + *e);
    return static_cast<int64_t>(std::llround(static_cast<double>(ns) * scale));
  };
  if (raw.duration) {
    auto d = scaled_duration(*raw.duration, "duration");
    KREPRO_TRY(d);
    if (*d < 1'000'000'000 || *d > 7 * 24 * 3600e9)
      return fail(raw.duration->origin, "duration must be between 1s and 7 days");
    c.duration_ns = *d;
  }
  std::set<std::string> phase_names;
  for (const auto& rp : raw.phases) {
    if (!phase_names.insert(rp.name).second)
      return fail(rp.origin, "duplicate phase name '" + rp.name + "'");
    CompiledPhase p;
    p.name = rp.name;
    if (rp.duration) {
      auto d = scaled_duration(*rp.duration, "phase '" + rp.name + "' duration");
      KREPRO_TRY(d);
      if (*d > 7 * 24 * 3600e9) return fail(rp.duration->origin, "phase duration over 7 days");
      p.duration_ns = *d;
    }
    if (rp.actors.empty()) return fail(rp.origin, "phase '" + rp.name + "' has no actors");
    std::set<std::string> names;
    for (const auto& ra : rp.actors) {
      const ActorType* t = reg.actor(ra.type);
      if (!t) {
        std::string all;
        for (const auto& a : reg.actors()) all += (all.empty() ? "" : ", ") + a->name;
        return fail(ra.origin, "unknown actor type '" + ra.type + "' (known: " + all + ")");
      }
      if (!names.insert(ra.name).second)
        return fail(ra.origin, "two actors named '" + ra.name + "' in phase '" + rp.name +
                                   "' (give one a 'name')");
      auto params =
          compile_params(t->params, ra.params, ra.origin, "actor '" + ra.name + "'", scale);
      KREPRO_TRY(params);
      p.actors.push_back(CompiledActor{t, ra.name, std::move(*params)});
    }
    c.phases.push_back(std::move(p));
  }
  if (c.duration_ns == 0) {
    int64_t sum = 0;
    bool unbounded = false;
    for (const auto& p : c.phases) {
      if (p.duration_ns == 0) unbounded = true;
      sum += p.duration_ns;
    }
    if (unbounded) return fail(whole, "a phase without 'duration' needs a scenario 'duration' cap");
    c.duration_ns = sum + 60'000'000'000;  // phases plus teardown
  }
  return c;
}

}  // namespace krepro::engine
