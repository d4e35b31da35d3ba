// Unit tests on a fake /proc/self and a fake cgroup tree (no root needed).
#include "harness/kernel/cgroup.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "harness/util/fs.h"

namespace krepro::kernel {
namespace {

class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/krepro-cgtest-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    root_ = t;
    ASSERT_TRUE(fs::make_dirs(root_ + "/proc/self"));
    ASSERT_TRUE(fs::make_dirs(root_ + "/sys/fs/cgroup/memory/process_api/abc"));
    ASSERT_TRUE(fs::make_dirs(root_ + "/sys/fs/cgroup/blkio"));
    ASSERT_TRUE(fs::make_dirs(root_ + "/sys/fs/cgroup/unified"));
    ASSERT_TRUE(
        fs::write_file(root_ + "/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n", true));
    // Lines in the format of fs/proc_namespace.c show_mountinfo, as seen here.
    ASSERT_TRUE(
        fs::write_file(root_ + "/proc/self/mountinfo",
                       "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                       "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
                       "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
                       "32 31 0:29 / /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu,cpuacct\n"
                       "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
                       "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
                       true));
    ASSERT_TRUE(fs::write_file(root_ + "/proc/self/cgroup",
                               "9:name=systemd:/\n7:blkio:/\n4:memory:/process_api/abc\n"
                               "1:cpu,cpuacct:/\n0::/\n",
                               true));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(FakeTree, DiscoversV1AndV2) {
  auto l = CgroupLayout::discover(root_ + "/proc/self", root_);
  ASSERT_TRUE(l) << l.error().message();
  ASSERT_NE(l->v1("memory"), nullptr);
  EXPECT_EQ(l->v1("memory")->mount_point, root_ + "/sys/fs/cgroup/memory");
  ASSERT_NE(l->v1("cpuacct"), nullptr);
  EXPECT_EQ(l->v1("cpuacct")->mount_point, root_ + "/sys/fs/cgroup/cpu x");  // \040 unescaped
  EXPECT_EQ(l->v1("pids"), nullptr);
  ASSERT_NE(l->v2(), nullptr);
  EXPECT_EQ(l->v2()->controllers, std::vector<std::string>{"hugetlb"});
  EXPECT_EQ(*l->self_dir_v1("memory"), root_ + "/sys/fs/cgroup/memory/process_api/abc");
  EXPECT_FALSE(l->self_at_root_v1("memory"));
  EXPECT_TRUE(l->self_at_root_v1("blkio"));
  EXPECT_EQ(*l->self_dir_v2(), root_ + "/sys/fs/cgroup/unified");
  EXPECT_FALSE(l->self_dir_v1("pids"));
}

TEST_F(FakeTree, MountRootIsStrippedInsideContainers) {
  // A container sees its own cgroup as the mount's root (mountinfo field 4).
  ASSERT_TRUE(fs::write_file(
      root_ + "/proc/self/mountinfo",
      "35 31 0:32 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", true));
  auto l = CgroupLayout::discover(root_ + "/proc/self", root_);
  ASSERT_TRUE(l);
  EXPECT_EQ(*l->self_dir_v1("memory"), root_ + "/sys/fs/cgroup/memory/abc");
}

TEST_F(FakeTree, CgroupCreateRemoveAndMove) {
  std::string parent = root_ + "/sys/fs/cgroup/memory/process_api/abc";
  {
    auto a = Cgroup::create(parent, "krepro-a", CgroupVersion::kV1);
    ASSERT_TRUE(a);
    EXPECT_TRUE(fs::is_dir(parent + "/krepro-a"));
    auto dup = Cgroup::create(parent, "krepro-a", CgroupVersion::kV1);
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().err(), EEXIST);
    auto b = Cgroup::create(parent, "krepro-b", CgroupVersion::kV1);
    ASSERT_TRUE(b);
    // Move-assignment releases (removes) what a held.
    *a = std::move(*b);
    EXPECT_FALSE(fs::exists(parent + "/krepro-a"));
    EXPECT_TRUE(fs::exists(parent + "/krepro-b"));
    EXPECT_FALSE(b->valid());
  }
  // Destructor removed krepro-b.
  EXPECT_FALSE(fs::exists(parent + "/krepro-b"));
}

TEST_F(FakeTree, RemoveReportsErrnoAsEvidence) {
  std::string parent = root_ + "/sys/fs/cgroup/memory";
  auto a = Cgroup::create(parent, "krepro-busy", CgroupVersion::kV1);
  ASSERT_TRUE(a);
  // A plain directory with a file in it: rmdir fails with ENOTEMPTY, the way
  // a cgroup with tasks fails with EBUSY.
  ASSERT_TRUE(fs::write_file(a->path() + "/f", "x", true));
  auto r = a->remove();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), ENOTEMPTY);
  EXPECT_TRUE(a->valid());
  ::unlink((a->path() + "/f").c_str());
  EXPECT_TRUE(a->remove());
}

TEST_F(FakeTree, KmemReadBackDetectsEnforcement) {
  std::string parent = root_ + "/sys/fs/cgroup/memory";
  auto a = Cgroup::create(parent, "krepro-kmem", CgroupVersion::kV1);
  ASSERT_TRUE(a);
  // Absent file: nothing written, not enforced.
  KmemState none = a->enable_kmem_like_runc();
  EXPECT_FALSE(none.file_present);
  // A plain empty file reads back what was written: after the first write
  // it holds "1", which counts as enforced (a kernel that ignores the
  // limit reads back PAGE_COUNTER_MAX instead; see the kernel test).
  ASSERT_TRUE(fs::write_file(a->path() + "/memory.kmem.limit_in_bytes", "", true));
  KmemState st = a->enable_kmem_like_runc();
  EXPECT_TRUE(st.file_present);
  EXPECT_TRUE(st.write_ok);
  EXPECT_TRUE(st.enforced);
  std::filesystem::remove(a->path() + "/memory.kmem.limit_in_bytes");
}

TEST(ParseFlatKeyed, MemoryStatAndCgroupStat) {
  auto m = parse_flat_keyed("cache 4096\nrss 0\nbogus\nnr_dying_descendants 7\n");
  EXPECT_EQ(m.at("cache"), 4096u);
  EXPECT_EQ(m.at("nr_dying_descendants"), 7u);
  EXPECT_EQ(m.count("bogus"), 0u);
}

TEST(ProcCgroups, ParsesNumCgroups) {
  char t[] = "/tmp/krepro-pc-XXXXXX";
  ASSERT_NE(::mkdtemp(t), nullptr);
  std::string f = std::string(t) + "/cgroups";
  ASSERT_TRUE(fs::write_file(f,
                             "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
                             "cpuset\t3\t1\t1\nmemory\t4\t30061\t1\n",
                             true));
  auto m = read_proc_cgroups(f);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->at("memory"), 30061u);
  std::filesystem::remove_all(t);
}

}  // namespace
}  // namespace krepro::kernel
