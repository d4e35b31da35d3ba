// Scenario parsing and validation, including hostile input: every bad file
// must give a message naming the file (and line:column where there is one),
// never a crash.
#include "harness/engine/scenario.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "harness/engine/actor.h"
#include "harness/engine/hub.h"
#include "harness/engine/registry.h"
#include "harness/util/fs.h"

namespace krepro::engine {
namespace {

Registry& reg() {
  static Registry r = [] {
    Registry x;
    register_builtin_actors(x);
    return x;
  }();
  return r;
}

std::string compile_error(const std::string& text, const std::string& file = "t.yaml") {
  auto raw = parse_scenario_text(text, file);
  if (!raw) return raw.error().message();
  auto c = compile_scenario(*raw, reg());
  if (!c) return c.error().message();
  return "";
}

const char* kGood = R"(name: t
description: test
duration: 30s
phases:
  - name: churn
    duration: 10s
    actors:
      - type: cgroup-churn
        count: 100
        alive: 10
        payload_size: 8KiB
      - type: netns-churn
        name: pods
        count: 10
options:
  teardown_wait: 5s
)";

TEST(Scenario, GoodCompiles) {
  auto raw = parse_scenario_text(kGood, "t.yaml");
  ASSERT_TRUE(raw) << raw.error().message();
  auto c = compile_scenario(*raw, reg());
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->name, "t");
  EXPECT_EQ(c->duration_ns, 30'000'000'000);
  ASSERT_EQ(c->phases.size(), 1u);
  EXPECT_EQ(c->phases[0].duration_ns, 10'000'000'000);
  ASSERT_EQ(c->phases[0].actors.size(), 2u);
  EXPECT_EQ(c->phases[0].actors[0].name, "cgroup-churn");
  EXPECT_EQ(c->phases[0].actors[0].params.get_int("payload_size"), 8192);
  EXPECT_EQ(c->phases[0].actors[0].params.get_int("workers"), 1);  // default
  EXPECT_EQ(c->options.get_int("teardown_wait"), 5'000'000'000);
}

TEST(Scenario, SetOverridesAndScale) {
  auto raw = parse_scenario_text(kGood, "t.yaml");
  ASSERT_TRUE(raw);
  ASSERT_TRUE(apply_set(*raw, "pods.alive=7"));
  ASSERT_TRUE(apply_set(*raw, "churn.cgroup-churn.count=50"));
  ASSERT_TRUE(apply_set(*raw, "churn.duration=20s"));
  ASSERT_TRUE(apply_set(*raw, "scale=2"));
  EXPECT_FALSE(apply_set(*raw, "nosuch.alive=1"));
  EXPECT_FALSE(apply_set(*raw, "novalue"));
  auto c = compile_scenario(*raw, reg());
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->phases[0].actors[1].params.get_int("alive"), 14);   // 7 × 2
  EXPECT_EQ(c->phases[0].actors[0].params.get_int("count"), 100);  // 50 × 2
  EXPECT_EQ(c->phases[0].duration_ns, 40'000'000'000);             // 20 s × 2
  // A bad --set value names --set, not the file.
  ASSERT_TRUE(apply_set(*raw, "pods.alive=lots"));
  auto bad = compile_scenario(*raw, reg());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("--set pods.alive=lots"), std::string::npos);
}

struct BadCase {
  const char* name;
  std::string text;
  const char* want;  // substring of the message
};

class BadScenario : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadScenario, ExitsWithLocatedMessage) {
  const BadCase& c = GetParam();
  std::string msg = compile_error(c.text, "bad.yaml");
  ASSERT_FALSE(msg.empty()) << "accepted: " << c.name;
  EXPECT_EQ(msg.rfind("bad.yaml", 0), 0u) << msg;
  EXPECT_NE(msg.find(c.want), std::string::npos) << msg;
}

std::string deep(int n, char open, char close) {
  return std::string(n, open) + std::string(n, close);
}

// Billion laughs: 26 levels of ten aliases each. yaml-cpp shares aliased
// nodes, and validation never expands them.
std::string alias_bomb() {
  std::string s = "phases:\n  - &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'z'; ++c) {
    s += std::string("  - &") + c + " [";
    for (int i = 0; i < 10; ++i) s += std::string(i ? ", " : "") + "*" + prev;
    s += "]\n";
    prev = c;
  }
  return s;
}

std::string block_nest(int n) {
  std::string s = "phases:\n";
  for (int i = 0; i < n; ++i) s += "- ";
  return s + "x\n";
}

const BadCase kBad[] = {
    {"empty", "", "empty scenario"},
    {"only comment", "# nothing\n", "empty scenario"},
    {"binary",
     std::string("\x7f"
                 "ELF\x02\x01\x01\0\0\0",
                 10),
     "binary data"},
    {"syntax", "phases: [\n  - name: x\n", "YAML syntax error"},
    {"tabs", "phases:\n\t- name: x\n", "bad.yaml:2"},
    {"not a map", "- 1\n- 2\n", "must be a mapping"},
    {"unknown top key", "phasez: []\n", "bad.yaml:1:1: unknown key 'phasez'"},
    {"no phases", "name: x\n", "no phases"},
    {"unknown actor", "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: nope\n",
     "bad.yaml:5:9: unknown actor type 'nope'"},
    {"unknown param",
     "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: cgroup-churn\n        "
     "colour: red\n",
     "bad.yaml:6:17: unknown parameter 'colour'"},
    {"wrong type",
     "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: cgroup-churn\n        "
     "alive: many\n",
     "bad.yaml:6:16: actor 'cgroup-churn' parameter 'alive': 'many' is not an integer"},
    {"negative",
     "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: cgroup-churn\n        "
     "count: -5\n",
     "out of range"},
    {"absurd",
     "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: netns-churn\n        "
     "alive: 1000000000\n",
     "out of range"},
    {"bad unit",
     "duration: 5 fortnights\nphases:\n  - name: a\n    actors:\n      - type: netns-churn\n",
     "bad.yaml:1:11: duration: bad unit 'fortnights'"},
    {"duration without unit",
     "duration: 60\nphases:\n  - name: a\n    actors:\n      - type: netns-churn\n",
     "needs a unit"},
    {"param is a list",
     "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: cgroup-churn\n        "
     "alive: [1, 2]\n",
     "must be a single value"},
    {"duplicate phase",
     "phases:\n  - name: a\n    duration: 1s\n    actors: [{type: netns-churn}]\n  - name: a\n    "
     "duration: 1s\n"
     "    actors: [{type: netns-churn}]\n",
     "duplicate phase name"},
    {"unbounded", "phases:\n  - name: a\n    actors: [{type: netns-churn}]\n",
     "needs a scenario 'duration'"},
    {"alias bomb", alias_bomb(), "a phase must be a mapping"},
    {"deep flow", "phases: " + deep(100000, '[', ']') + "\n", "nesting deeper than 64"},
    {"deep map flow", "phases: " + deep(100000, '{', '}') + "\n", "nesting deeper than 64"},
    {"deep block", block_nest(100000), "nesting deeper than 64"},
    {"bad option",
     "options: {scale: -1}\nphases: [{name: a, duration: 1s, actors: [{type: netns-churn}]}]\n",
     "scenario option parameter 'scale'"},
    {"relative cgroup parent",
     "options: {cgroup_parent: foo}\nphases: [{name: a, duration: 1s, actors: [{type: "
     "netns-churn}]}]\n",
     "absolute path"},
};

INSTANTIATE_TEST_SUITE_P(All, BadScenario, ::testing::ValuesIn(kBad),
                         [](const ::testing::TestParamInfo<BadCase>& i) {
                           std::string n = i.param.name;
                           for (auto& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// cgroup-churn's controllers against a fake host: a name that is no
// controller is a scenario error (exit 2), one the host does not mount a
// skip (exit 4); nothing is created either way.
class ChurnPrecheck : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/krepro-precheck-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    root_ = t;
    ASSERT_TRUE(fs::make_dirs(root_ + "/proc/self"));
    ASSERT_TRUE(fs::make_dirs(root_ + "/sys/fs/cgroup/unified"));
    ASSERT_TRUE(fs::write_file(root_ + "/sys/fs/cgroup/unified/cgroup.controllers",
                               "cpu memory pids\n", true));
    ASSERT_TRUE(fs::write_file(root_ + "/sys/fs/cgroup/unified/cgroup.subtree_control",
                               "memory cpu\n", true));
    ASSERT_TRUE(
        fs::write_file(root_ + "/proc/self/mountinfo",
                       "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                       "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                       "36 31 0:33 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
                       "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
                       true));
    ASSERT_TRUE(fs::write_file(root_ + "/proc/self/cgroup",
                               "8:pids:/\n4:memory:/job\n1:cpu,cpuacct:/\n0::/\n", true));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Precheck of the first actor of a one-actor scenario.
  Precheck check(const std::string& actor_params, kernel::CgroupVersion v,
                 const std::string& options = "") {
    std::string text =
        "name: t\nduration: 10s\nphases:\n  - name: p\n    actors:\n"
        "      - {type: cgroup-churn, count: 1" +
        actor_params + "}\n" + options;
    auto raw = parse_scenario_text(text, "t.yaml");
    EXPECT_TRUE(raw) << raw.error().message();
    if (!raw) return Precheck::usage("parse");
    auto sc = compile_scenario(*raw, reg());
    EXPECT_TRUE(sc) << sc.error().message();
    if (!sc) return Precheck::usage("compile");
    RunContext ctx;
    auto l = kernel::CgroupLayout::discover(root_ + "/proc/self", root_);
    EXPECT_TRUE(l);
    ctx.layout = std::move(*l);
    ctx.cg_version = v;
    ctx.options = &sc->options;
    const CompiledActor& ca = sc->phases[0].actors[0];
    return ca.type->make(ca)->precheck(ctx);
  }
  std::string root_;
};

TEST_F(ChurnPrecheck, ControllersDefaultToMemoryAndAreListed) {
  const ActorType* t = reg().actor("cgroup-churn");
  ASSERT_NE(t, nullptr);
  auto it = std::find_if(t->params.begin(), t->params.end(),
                         [](const ParamSpec& p) { return p.name == "controllers"; });
  ASSERT_NE(it, t->params.end());
  EXPECT_EQ(it->default_value, "memory");
  EXPECT_EQ(check("", kernel::CgroupVersion::kV1).kind, Precheck::Kind::kOk);
}

TEST_F(ChurnPrecheck, V1NamesAreCheckedAgainstTheLayout) {
  using K = Precheck::Kind;
  const auto v1 = kernel::CgroupVersion::kV1;
  // pids and cpu sit at their hierarchy roots here: refused (exit 2, with
  // the option to pass) until cgroup_parent names them.
  Precheck root = check(", controllers: 'memory,pids'", v1);
  EXPECT_EQ(root.kind, K::kUsage);
  EXPECT_NE(root.reason.find("cgroup_parent"), std::string::npos) << root.reason;
  const std::string cg = root_ + "/sys/fs/cgroup";
  const std::string named =
      "options: {cgroup_parent: '" + cg + "/pids:" + cg + "/cpu,cpuacct/krepro-ci'}\n";
  EXPECT_EQ(check(", controllers: 'memory,cpu,cpuacct,pids'", v1, named).kind, K::kOk);
  EXPECT_EQ(check(", controllers: 'pids cpu'", v1, "options: {cgroup_parent: /}\n").kind, K::kOk);
  EXPECT_EQ(check(", controllers: 'memory,cpu'", v1, "options: {cgroup_parent: '/a:/b'}\n").kind,
            K::kUsage);
  Precheck typo = check(", controllers: 'memory,memroy'", v1);
  EXPECT_EQ(typo.kind, K::kUsage);
  EXPECT_NE(typo.reason.find("'memroy'"), std::string::npos) << typo.reason;
  Precheck empty = check(", controllers: ','", v1);
  EXPECT_EQ(empty.kind, K::kUsage);
  Precheck unmounted = check(", controllers: 'memory,blkio'", v1);
  EXPECT_EQ(unmounted.kind, K::kSkip);
  EXPECT_NE(unmounted.reason.find("blkio"), std::string::npos) << unmounted.reason;
  // Knobs need their controller.
  EXPECT_EQ(check(", pids_max: 10", v1).kind, K::kUsage);
  EXPECT_EQ(check(", controllers: 'memory,pids', pids_max: 10", v1, named).kind, K::kOk);
  EXPECT_EQ(check(", cpu_shares: 512", v1).kind, K::kUsage);
  EXPECT_EQ(check(", controllers: pids, memory_limit: 1MiB", v1).kind, K::kUsage);
}

TEST_F(ChurnPrecheck, V2NeedsTheControllerDelegated) {
  using K = Precheck::Kind;
  const auto v2 = kernel::CgroupVersion::kV2;
  const std::string at_root = "options: {cgroup_parent: " + root_ + "/sys/fs/cgroup/unified}\n";
  EXPECT_EQ(check(", controllers: 'memory,cpu'", v2, at_root).kind, K::kOk);
  // pids is in the hierarchy but not in the parent's subtree_control.
  Precheck pids = check(", controllers: 'memory,pids'", v2, at_root);
  EXPECT_EQ(pids.kind, K::kSkip);
  EXPECT_NE(pids.reason.find("subtree_control"), std::string::npos) << pids.reason;
  EXPECT_EQ(check(", controllers: 'memory,io'", v2, at_root).kind, K::kSkip);
  Precheck blkio = check(", controllers: blkio", v2, at_root);
  EXPECT_EQ(blkio.kind, K::kSkip);
  EXPECT_NE(blkio.reason.find("io"), std::string::npos);
  EXPECT_EQ(check(", controllers: 'memory,bogus'", v2, at_root).kind, K::kUsage);
}

TEST(ScenarioFile, MissingAndDirectory) {
  auto missing = parse_scenario_file("/nonexistent/krepro.yaml");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/nonexistent/krepro.yaml"), std::string::npos);
  EXPECT_EQ(missing.error().err(), ENOENT);
  auto dir = parse_scenario_file("/tmp");
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message().find("/tmp: is a directory"), std::string::npos);
}

TEST(ScenarioFile, ShippedScenariosCompile) {
  std::string dir = std::string(KREPRO_SOURCE_DIR) + "/scenarios";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    auto raw = parse_scenario_file(e.path().string());
    ASSERT_TRUE(raw) << raw.error().message();
    auto c = compile_scenario(*raw, reg());
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_FALSE(c->description.empty()) << e.path();
    ++n;
  }
  EXPECT_GE(n, 2);
}

}  // namespace
}  // namespace krepro::engine
