// Payloads run by the job spawner against real memory cgroups. This
// binary's main serves __job-spawner with workloads::payload_spawner_main,
// as krepro's main does.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "harness/kernel/cgroup.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"
#include "workloads/payload_spawner.h"

namespace krepro::workloads {
namespace {

using kernel::Cgroup;
using kernel::CgroupVersion;
using kernel::Job;
using kernel::JobPlacement;
using kernel::Spawner;

class ScratchDir : public ::testing::Test {
 protected:
  void SetUp() override {
    // On a disk filesystem: the page cache of a real file is the point.
    char t[] = "/var/tmp/krepro-spawn-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ScratchDir, SpawnedWriteRunsThePayloadAndBadPathsFail) {
  auto s = Spawner::start("/proc/self/exe");
  ASSERT_TRUE(s) << s.error().message();
  PayloadSpec spec;
  spec.kind = PayloadKind::kWrite;
  spec.size_kib = 12;
  std::string path = dir_ + "/job-1";
  auto j = spawn_payload(*s, {}, spec, path);
  ASSERT_TRUE(j) << j.error().message();
  EXPECT_EQ(*j->wait(), 0);
  EXPECT_EQ(fs::read_file(path).value_or("").size(), 12u * 1024);
  // A path whose directory does not exist: the payload's errno code, as
  // on the fork and vfork paths.
  auto bad = spawn_payload(*s, {}, spec, dir_ + "/missing/job");
  ASSERT_TRUE(bad) << bad.error().message();
  EXPECT_EQ(*bad->wait(), ENOENT);
  // Bytes that are not a PayloadSpec are refused by the spawned child.
  char junk = 0;
  auto odd = s->spawn({}, &junk, 1, path);
  ASSERT_TRUE(odd);
  EXPECT_EQ(*odd->wait(), EINVAL);
}

std::string self_memcg_or_empty() {
  if (::geteuid() != 0) return {};
  auto l = kernel::CgroupLayout::discover();
  if (!l || !l->v1("memory")) return {};
  auto d = l->self_dir_v1("memory");
  return d ? *d : std::string();
}

uint64_t local_cache(const Cgroup& cg) {
  auto st = cg.read_stat("memory.stat");
  if (!st) return ~uint64_t{0};
  auto it = st->find("cache");  // v1: this memcg's own page cache
  return it == st->end() ? ~uint64_t{0} : it->second;
}

Result<void> remove_retrying(Cgroup& cg) {
  Result<void> r = make_error(EBUSY, "not tried");
  for (int i = 0; i < 400 && !r; ++i) {
    r = cg.remove();
    if (!r) ::usleep(5000);
  }
  return r;
}

// The job's page cache belongs to the job's memcg, not to the memcg of the
// process that asked for the job. The owner (standing in for krepro) runs
// in a memcg of its own, so both sides can be measured without noise from
// the machine's other processes. The control does the same through
// Job::vfork_payload: a CLONE_VM child's page cache is charged to the
// owner's memcg (mm/memcontrol.c get_mem_cgroup_from_mm), which shows the
// measurement tells the two apart.
TEST_F(ScratchDir, SpawnedWritePageCacheIsChargedToTheJobsMemcg) {
  std::string parent = self_memcg_or_empty();
  if (parent.empty()) GTEST_SKIP() << "needs root and a cgroup v1 memory hierarchy";
  std::string top = "krepro-spawn-memcg-" + std::to_string(::getpid());
  auto t = Cgroup::create(parent, top, CgroupVersion::kV1);
  ASSERT_TRUE(t) << t.error().message();
  struct Guard {
    std::string dir;
    ~Guard() { kernel::remove_cgroup_tree(dir, true); }
  } guard{t->path()};
  auto owner = Cgroup::create(t->path(), "owner", CgroupVersion::kV1);
  auto job = Cgroup::create(t->path(), "job", CgroupVersion::kV1);
  auto vowner = Cgroup::create(t->path(), "vowner", CgroupVersion::kV1);
  auto vjob = Cgroup::create(t->path(), "vjob", CgroupVersion::kV1);
  ASSERT_TRUE(owner && job && vowner && vjob);
  auto owner_fd = owner->open_procs();
  auto job_fd = job->open_procs();
  auto vowner_fd = vowner->open_procs();
  auto vjob_fd = vjob->open_procs();
  ASSERT_TRUE(owner_fd && job_fd && vowner_fd && vjob_fd);

  constexpr uint64_t kKib = 8192;
  constexpr uint64_t kBytes = kKib * 1024;
  PayloadSpec spec;
  spec.kind = PayloadKind::kWrite;
  spec.size_kib = kKib;
  spec.keep = true;
  std::string spawned_file = dir_ + "/spawned";
  std::string vfork_file = dir_ + "/vforked";

  // The owner: in `owner`, starts its spawner there and a write job in
  // `job`, keeps the file.
  JobPlacement in_owner, in_job;
  in_owner.cgroup_procs_fds = {owner_fd->get()};
  in_job.cgroup_procs_fds = {job_fd->get()};
  auto o = Job::fork_payload(in_owner, [&] {
    auto s = Spawner::start("/proc/self/exe");
    if (!s) return 2;
    auto j = spawn_payload(*s, in_job, spec, spawned_file);
    if (!j) return 3;
    auto c = j->wait();
    if (!c) return 4;
    return *c == 0 ? 0 : 10 + *c;
  });
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(*o->wait(), 0);
  EXPECT_GE(local_cache(*job), kBytes * 9 / 10) << "the job's memcg holds its page cache";
  EXPECT_LT(local_cache(*owner), kBytes / 2) << "the owner's memcg must not be charged";

#if !defined(__SANITIZE_ADDRESS__)
  JobPlacement in_vowner, in_vjob;
  in_vowner.cgroup_procs_fds = {vowner_fd->get()};
  in_vjob.cgroup_procs_fds = {vjob_fd->get()};
  const char* vpath = vfork_file.c_str();
  auto v = Job::fork_payload(in_vowner, [&] {
    auto j = Job::vfork_payload(in_vjob, [&] { return run_payload(spec, vpath); });
    if (!j) return 3;
    auto c = j->wait();
    return c && *c == 0 ? 0 : 4;
  });
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(*v->wait(), 0);
  EXPECT_LT(local_cache(*vjob), kBytes / 2) << "control: a CLONE_VM job's cache is not its own";
  EXPECT_GE(local_cache(*vowner), kBytes * 9 / 10) << "control: it is the owner's";
#endif

  // Unlink before rmdir: kept page cache pins a dying memcg
  // (KERNEL-NOTES.md).
  ::unlink(spawned_file.c_str());
  ::unlink(vfork_file.c_str());
  owner_fd->reset();
  job_fd->reset();
  vowner_fd->reset();
  vjob_fd->reset();
  for (Cgroup* c : {&*job, &*owner, &*vjob, &*vowner})
    EXPECT_TRUE(remove_retrying(*c)) << c->path();
  EXPECT_TRUE(remove_retrying(*t));
  EXPECT_FALSE(fs::exists(guard.dir)) << guard.dir;
}

}  // namespace
}  // namespace krepro::workloads

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == krepro::kernel::kSpawnerCommand)
    return krepro::workloads::payload_spawner_main();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
