#include "harness/engine/journal.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "harness/util/fs.h"

namespace krepro::engine {
namespace {

class JournalDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/krepro-journal-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    root_ = t;
    jdir_ = root_ + "/journals";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_, jdir_;
};

TEST_F(JournalDir, StartTicksIdentifyThisProcess) {
  EXPECT_GT(process_start_ticks(::getpid()), 0u);
  EXPECT_EQ(process_start_ticks(0x3fffffff), 0u);
}

TEST_F(JournalDir, CleanupRemovesDeadRunsOnlyAndOnlyPrefixedPaths) {
  // A live run: this process.
  auto live = Journal::create(jdir_, "live0001", root_);
  ASSERT_TRUE(live);
  std::string live_dir = root_ + "/krepro-live0001";
  ASSERT_TRUE(live->add_cgroup_dir(live_dir));
  ASSERT_TRUE(fs::make_dirs(live_dir));

  // A dead run: a journal whose pid has exited.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int st;
  ::waitpid(child, &st, 0);
  std::string dead_cg = root_ + "/krepro-dead0001";
  std::string dead_scratch = root_ + "/krepro-dead0001-scratch";
  std::string unprefixed = root_ + "/precious";
  ASSERT_TRUE(fs::make_dirs(dead_cg + "/krepro-dead0001-1"));
  ASSERT_TRUE(fs::make_dirs(dead_scratch));
  ASSERT_TRUE(fs::write_file(dead_scratch + "/job-1", "x", true));
  ASSERT_TRUE(fs::make_dirs(unprefixed));
  nlohmann::json j = {{"run_id", "dead0001"},
                      {"pid", child},
                      {"start_ticks", 1},
                      {"cgroup_dirs", {dead_cg, unprefixed}},
                      {"scratch_dirs", {dead_scratch}}};
  ASSERT_TRUE(fs::write_file(jdir_ + "/krepro-dead0001.json", j.dump(), true));
  // Garbage in the journal folder is ignored, not fatal.
  ASSERT_TRUE(fs::write_file(jdir_ + "/krepro-torn.json", "{\"run_id\": ", true));

  auto js = read_journals(jdir_);
  ASSERT_TRUE(js);
  int live_n = 0, dead_n = 0;
  for (const auto& e : *js) (e.live ? live_n : dead_n)++;
  EXPECT_EQ(live_n, 1);
  EXPECT_EQ(dead_n, 1);

  CleanupReport rep = cleanup_dead_runs(jdir_);
  EXPECT_EQ(rep.runs_cleaned, std::vector<std::string>{"dead0001"});
  EXPECT_EQ(rep.runs_live, std::vector<std::string>{"live0001"});
  EXPECT_EQ(rep.cgroups_removed, 2u);
  EXPECT_EQ(rep.scratch_removed, 1u);
  EXPECT_FALSE(fs::exists(dead_cg));
  EXPECT_FALSE(fs::exists(dead_scratch));
  EXPECT_TRUE(fs::exists(unprefixed));  // no krepro- prefix: never touched
  EXPECT_EQ(rep.skipped, std::vector<std::string>{unprefixed});
  EXPECT_TRUE(fs::exists(live_dir));  // live run untouched
  EXPECT_FALSE(fs::exists(jdir_ + "/krepro-dead0001.json"));
  live->remove();
  EXPECT_FALSE(fs::exists(jdir_ + "/krepro-live0001.json"));
}

}  // namespace
}  // namespace krepro::engine
