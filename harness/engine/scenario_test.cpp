// Scenario parsing and validation, including hostile input: every bad file
// must give a message naming the file (and line:column where there is one),
// never a crash.
#include "harness/engine/scenario.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness/engine/registry.h"

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
