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

TEST(Controllers, KnownNamesAndLists) {
  EXPECT_TRUE(is_known_controller("memory"));
  EXPECT_TRUE(is_known_controller("pids"));
  EXPECT_TRUE(is_known_controller("cpuacct"));
  EXPECT_FALSE(is_known_controller("memroy"));
  EXPECT_FALSE(is_known_controller("name=systemd"));
  EXPECT_FALSE(is_known_controller(""));
  EXPECT_TRUE(is_v2_controller("io"));
  EXPECT_FALSE(is_v2_controller("blkio"));
  EXPECT_FALSE(is_v2_controller("cpuacct"));
  EXPECT_EQ(split_controller_list(" memory, cpu,pids  memory,,"),
            (std::vector<std::string>{"memory", "cpu", "pids"}));
  EXPECT_TRUE(split_controller_list(" , ").empty());
}

TEST_F(FakeTree, HierarchiesGroupCoMountedControllers) {
  auto l = CgroupLayout::discover(root_ + "/proc/self", root_);
  ASSERT_TRUE(l);
  auto hs = l->v1_hierarchies({"memory", "cpuacct", "blkio", "cpu"});
  ASSERT_TRUE(hs) << hs.error().message();
  ASSERT_EQ(hs->size(), 3u);
  EXPECT_EQ((*hs)[0].key(), "memory");
  EXPECT_EQ((*hs)[1].key(), "cpuacct,cpu");  // one hierarchy, made once
  EXPECT_EQ((*hs)[1].mount.mount_point, root_ + "/sys/fs/cgroup/cpu x");
  EXPECT_TRUE((*hs)[1].has("cpu"));
  EXPECT_FALSE((*hs)[1].has("memory"));
  EXPECT_EQ((*hs)[2].key(), "blkio");
  auto none = l->v1_hierarchies({"memory", "pids"});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().err(), ENOENT);
  EXPECT_NE(none.error().message().find("pids"), std::string::npos);
}

TEST_F(FakeTree, RunParentPerHierarchy) {
  auto l = CgroupLayout::discover(root_ + "/proc/self", root_);
  ASSERT_TRUE(l);
  const std::string cg = root_ + "/sys/fs/cgroup";
  // Default: the cgroup krepro runs in; refused at a hierarchy root.
  EXPECT_EQ(*l->run_parent_v1("memory", ""), cg + "/memory/process_api/abc");
  auto blk = l->run_parent_v1("blkio", "");
  ASSERT_FALSE(blk);
  EXPECT_EQ(blk.error().err(), EPERM);
  EXPECT_NE(blk.error().message().find("blkio"), std::string::npos);
  EXPECT_FALSE(l->run_parent_v2(""));
  EXPECT_FALSE(l->run_parent_v1("pids", "/"));  // not mounted at all

  // A directory inside one mount applies to that hierarchy only.
  std::string only_blkio = cg + "/blkio/ci/";
  EXPECT_EQ(*l->run_parent_v1("blkio", only_blkio), cg + "/blkio/ci");
  EXPECT_EQ(*l->run_parent_v1("memory", only_blkio), cg + "/memory/process_api/abc");
  EXPECT_EQ(l->run_parent_v1("cpu", only_blkio).error().err(), EPERM);
  // The mount point itself is "that hierarchy's root", said explicitly.
  EXPECT_EQ(*l->run_parent_v1("cpuacct", cg + "/cpu x"), cg + "/cpu x");

  // A cgroup path outside every mount applies in every hierarchy not named.
  std::string mixed = cg + "/memory/process_api/abc:" + "/";
  EXPECT_EQ(*l->run_parent_v1("memory", mixed), cg + "/memory/process_api/abc");
  EXPECT_EQ(*l->run_parent_v1("blkio", mixed), cg + "/blkio");
  EXPECT_EQ(*l->run_parent_v1("cpu", mixed), cg + "/cpu x");
  EXPECT_EQ(*l->run_parent_v1("blkio", "/ci"), cg + "/blkio/ci");
  EXPECT_EQ(*l->run_parent_v2("/"), cg + "/unified");
  EXPECT_EQ(*l->run_parent_v2(cg + "/unified/x"), cg + "/unified/x");

  // Malformed lists are errors before anything is made.
  for (const std::string& bad :
       {std::string("ci"), std::string("/a/../b"), std::string("/a/.."), std::string("/a:/b"),
        cg + "/blkio/a:" + cg + "/blkio/b", std::string("/:x")}) {
    auto r = l->check_cgroup_parent(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().err(), EINVAL) << bad;
    EXPECT_FALSE(l->run_parent_v1("memory", bad)) << bad;
  }
  EXPECT_TRUE(l->check_cgroup_parent(cg + "/blkio/a:" + cg + "/memory/b:/"));
  // A symlink to a mount point (systemd's cpu -> cpu,cpuacct) is that mount.
  ASSERT_TRUE(fs::make_dirs(cg + "/cpu x"));
  std::filesystem::create_directory_symlink(cg + "/cpu x", cg + "/cpu");
  EXPECT_EQ(*l->run_parent_v1("cpu", cg + "/cpu:/ci"), cg + "/cpu x");
  EXPECT_EQ(*l->run_parent_v1("blkio", cg + "/cpu:/ci"), cg + "/blkio/ci");
  EXPECT_TRUE(l->check_cgroup_parent(""));
}

TEST_F(FakeTree, RunParentInsideContainerStripsMountRoot) {
  ASSERT_TRUE(fs::write_file(
      root_ + "/proc/self/mountinfo",
      "35 31 0:32 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", true));
  auto l = CgroupLayout::discover(root_ + "/proc/self", root_);
  ASSERT_TRUE(l);
  // A /proc/self/cgroup-style path is read against the mount's root.
  EXPECT_EQ(*l->run_parent_v1("memory", "/process_api/abc"), root_ + "/sys/fs/cgroup/memory/abc");
}

TEST_F(FakeTree, CpusetCopiedAndProcsOpened) {
  std::string parent = root_ + "/sys/fs/cgroup/blkio";  // any directory of the fake tree
  ASSERT_TRUE(fs::write_file(parent + "/cpuset.cpus", "0-1\n", true));
  ASSERT_TRUE(fs::write_file(parent + "/cpuset.mems", "0\n", true));
  auto a = Cgroup::create(parent, "krepro-cs", CgroupVersion::kV1);
  ASSERT_TRUE(a);
  // Files a real cgroup would have; the kernel makes them with the cgroup.
  ASSERT_TRUE(fs::write_file(a->path() + "/cpuset.cpus", "", true));
  ASSERT_TRUE(fs::write_file(a->path() + "/cpuset.mems", "", true));
  EXPECT_FALSE(a->open_procs());
  ASSERT_TRUE(fs::write_file(a->path() + "/cgroup.procs", "", true));
  auto fd = a->open_procs();
  ASSERT_TRUE(fd) << fd.error().message();
  EXPECT_TRUE(fd->valid());
  ASSERT_TRUE(a->copy_cpuset_from(parent));
  EXPECT_EQ(*fs::read_line(a->path() + "/cpuset.cpus"), "0-1");
  EXPECT_EQ(*fs::read_line(a->path() + "/cpuset.mems"), "0");
  // A parent without cpuset files: the error names it.
  auto r = a->copy_cpuset_from(root_ + "/sys/fs/cgroup/memory");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), ENOENT);
  for (const char* f : {"cpuset.cpus", "cpuset.mems", "cgroup.procs"})
    ::unlink((a->path() + "/" + f).c_str());
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
