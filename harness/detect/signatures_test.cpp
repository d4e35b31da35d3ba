#include "harness/detect/signatures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace krepro::detect {
namespace {

// Feeds lines and returns the final state of every hit (kHit, then the
// kUpdate that completed it, if any).
std::vector<SignatureHit> run(const std::vector<std::string>& lines) {
  SignatureMatcher m;
  std::vector<SignatureHit> hits;
  auto take = [&](std::vector<MatchEvent> evs) {
    for (auto& e : evs) {
      if (e.kind == MatchEvent::Kind::kHit) {
        hits.push_back(e.hit);
      } else {
        ASSERT_FALSE(hits.empty());
        ASSERT_EQ(hits.back().id, e.hit.id);
        hits.back() = e.hit;
      }
    }
  };
  double t = 1;
  for (const auto& l : lines) take(m.feed(l, t++));
  take(m.finish());
  return hits;
}

TEST(SignatureTable, EntriesAreCompleteAndUnique) {
  std::set<std::string_view> ids;
  const std::set<std::string_view> bugs = {"netdev-refcount-leak", "kmem-writeback-jitter",
                                           "memcg-id-leak", "generic"};
  for (const auto& s : builtin_signatures()) {
    EXPECT_TRUE(ids.insert(s.id).second) << s.id;
    EXPECT_TRUE(bugs.count(s.bug)) << s.id;
    EXPECT_FALSE(s.source_file.empty()) << s.id;
    EXPECT_FALSE(s.source_function.empty()) << s.id;
    EXPECT_FALSE(s.help.empty()) << s.id;
    ASSERT_FALSE(s.patterns.empty()) << s.id;
    for (const auto& p : s.patterns) {
      // The literal prefilter must be part of what the regex requires.
      std::string plain;
      for (size_t i = 0; i < p.regex.size(); ++i) {
        if (p.regex.substr(i, 2) == "?:") {
          ++i;
        } else if (p.regex[i] != '(' && p.regex[i] != ')' && p.regex[i] != '\\') {
          plain.push_back(p.regex[i]);
        }
      }
      EXPECT_NE(plain.find(p.literal), std::string::npos) << s.id << ": " << p.literal;
    }
  }
  for (auto id : {"netdev-unregister-wait", "slub-alloc-failure", "hung-task", "page-alloc-failure",
                  "memcg-oom", "global-oom", "soft-lockup", "rcu-stall", "warning", "bug-oops",
                  "kernel-panic"}) {
    EXPECT_NE(find_signature(id), nullptr) << id;
  }
}

TEST(SignatureMatcher, NetdevUnregisterExtractsDeviceAndCount) {
  auto hits = run({"unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
                   "unregister_netdevice: waiting for veth1a2b to become free. Usage count = -3",
                   "unregister_netdevice: waiting for lo to become free. Usage count = 2 "
                   "(ffff888100a5c000)"});
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].id, "netdev-unregister-wait");
  EXPECT_EQ(hits[0].bug, "netdev-refcount-leak");
  EXPECT_EQ(hits[0].fields["device"], "eth0");
  EXPECT_EQ(hits[0].fields["usage_count"], "1");
  EXPECT_EQ(hits[1].fields["usage_count"], "-3");
  EXPECT_EQ(hits[2].fields["device"], "lo");
  EXPECT_DOUBLE_EQ(hits[2].ts_s, 3);
}

TEST(SignatureMatcher, SlubJoinsCacheLineWithMemcg) {
  auto hits = run({"SLUB: Unable to allocate memory on node -1 (gfp=0x8020)",
                   "  cache: kmalloc-64(5:e2b4c2fa), object size: 64, buffer size: 64, default "
                   "order: 0, min order: 0",
                   "  node 0: slabs: 12, objs: 768, free: 0",
                   "SLUB: Unable to allocate memory on node -1, gfp=0xa20(GFP_ATOMIC)",
                   "  cache: skbuff_head_cache, object size: 232, buffer size: 256, default "
                   "order: 1, min order: 0",
                   "eth0: something else"});
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].fields["node"], "-1");
  EXPECT_EQ(hits[0].fields["gfp"], "0x8020");
  EXPECT_EQ(hits[0].fields["cache"], "kmalloc-64");
  EXPECT_EQ(hits[0].fields["memcg_id"], "5");
  EXPECT_EQ(hits[0].fields["memcg_name"], "e2b4c2fa");
  EXPECT_EQ(hits[0].fields["object_size"], "64");
  EXPECT_EQ(hits[0].extra_lines.size(), 2u);
  EXPECT_EQ(hits[1].fields["gfp"], "0xa20");
  EXPECT_EQ(hits[1].fields["gfp_flags"], "GFP_ATOMIC");
  EXPECT_EQ(hits[1].fields["cache"], "skbuff_head_cache");
  EXPECT_EQ(hits[1].fields.count("memcg_id"), 0u);
}

TEST(SignatureMatcher, SlabIsNotSlub) {
  EXPECT_TRUE(run({"SLAB: Unable to allocate memory on node 0 (gfp=0x20)"}).empty());
}

TEST(SignatureMatcher, HungTaskGroupsTraceAndHintsNetns) {
  auto hits = run({"INFO: task kworker/u16:2:6193 blocked for more than 120 seconds.",
                   "      Not tainted 4.19.0-6-amd64 #1 Debian 4.19.67-2",
                   "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
                   "kworker/u16:2   D    0  6193      2 0x80000000", "Workqueue: netns cleanup_net",
                   "Call Trace:", " ? __schedule+0x2a2/0x870", " schedule+0x28/0x80",
                   " netdev_run_todo+0x1a0/0x2e0", " cleanup_net+0x1f9/0x2e0",
                   "IPv6: ADDRCONF(NETDEV_UP): eth0: link is not ready"});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, "hung-task");
  EXPECT_EQ(hits[0].fields["task"], "kworker/u16:2");
  EXPECT_EQ(hits[0].fields["pid"], "6193");
  EXPECT_EQ(hits[0].fields["seconds"], "120");
  EXPECT_EQ(hits[0].extra_lines.size(), 9u);
  EXPECT_EQ(hits[0].fields["hint"], "netdev-refcount-leak");
}

TEST(SignatureMatcher, UnregisterQueueFrameInTraceIsNotAHit) {
  auto hits = run({"Call Trace:", " unregister_netdevice_queue+0x1f/0xd0",
                   " unregister_netdevice_many+0x30/0x40"});
  EXPECT_TRUE(hits.empty());
}

TEST(SignatureMatcher, OtherSignatures) {
  auto hits = run({
      "kworker/0:1: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), "
      "nodemask=(null)",
      "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=abc,mems_allowed=0,oom_"
      "memcg=/kubepods/pod1,task_memcg=/kubepods/pod1/c1,task=java,pid=4242,uid=0",
      "Memory cgroup out of memory: Killed process 4242 (java) total-vm:100kB",
      "watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [kworker/3:1:77]",
      "rcu: INFO: rcu_preempt self-detected stall on CPU",
      "WARNING: CPU: 1 PID: 9 at net/core/dev.c:10945 netdev_run_todo+0x5c/0x300",
      "WARNING: at fs/sysfs/dir.c:31 sysfs_warn_dup+0x62/0x80()",
      "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
      "IP: [<ffffffff8155b8a0>] dst_release+0x10/0x50",
      "PGD 0",
      "Oops: 0000 [#1] SMP",
      "---[ end trace 1d2b3c4d5e6f7a8b ]---",
      "Kernel panic - not syncing: Fatal exception in interrupt",
  });
  std::vector<std::string> ids;
  for (auto& h : hits) ids.push_back(h.id);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"page-alloc-failure", "memcg-oom", "soft-lockup", "rcu-stall",
                                      "warning", "warning", "bug-oops", "kernel-panic"}));
  ASSERT_EQ(hits.size(), 8u);
  EXPECT_EQ(hits[0].fields["order"], "4");
  EXPECT_EQ(hits[0].fields["task"], "kworker/0:1");
  EXPECT_EQ(hits[1].fields["oom_memcg"], "/kubepods/pod1");
  EXPECT_EQ(hits[1].fields["pid"], "4242");
  EXPECT_EQ(hits[2].fields["cpu"], "3");
  EXPECT_EQ(hits[2].fields["task"], "kworker/3:1");
  EXPECT_EQ(hits[3].fields["flavor"], "rcu_preempt");
  EXPECT_EQ(hits[4].fields["file"], "net/core/dev.c");
  EXPECT_EQ(hits[4].fields["line"], "10945");
  EXPECT_EQ(hits[5].fields["file"], "fs/sysfs/dir.c");
  EXPECT_EQ(hits[5].fields.count("cpu"), 0u);
  EXPECT_EQ(hits[6].fields["oops"], "0000 [#1] SMP");
  EXPECT_EQ(hits[6].fields["what"], "kernel NULL pointer dereference at 0000000000000008");
  EXPECT_EQ(hits[7].fields["reason"], "Fatal exception in interrupt");
}

TEST(SignatureMatcher, HeadersAreAnchored) {
  EXPECT_TRUE(run({"dockerd: level=error msg=\"unregister_netdevice: waiting for lo to become "
                   "free. Usage count = 1\""})
                  .empty());
  EXPECT_TRUE(run({"grep 'SLUB: Unable to allocate memory on node' /var/log/messages"}).empty());
  EXPECT_TRUE(run({"WARNING: possible circular locking dependency detected"}).empty());
}

TEST(SignatureMatcher, HitIsEmittedAtOnceAndUpdateAtClose) {
  SignatureMatcher m;
  auto e1 = m.feed("SLUB: Unable to allocate memory on node 0 (gfp=0x20)", 5.0, "5.000000");
  ASSERT_EQ(e1.size(), 1u);
  EXPECT_EQ(e1[0].kind, MatchEvent::Kind::kHit);
  EXPECT_EQ(e1[0].hit.time_text, "5.000000");
  EXPECT_TRUE(m.feed("  cache: dentry(3:x), object size: 192", 5.0).empty());
  auto e2 = m.finish();
  ASSERT_EQ(e2.size(), 1u);
  EXPECT_EQ(e2[0].kind, MatchEvent::Kind::kUpdate);
  EXPECT_EQ(e2[0].hit.fields.at("cache"), "dentry");
  EXPECT_TRUE(m.finish().empty());
}

TEST(SignatureMatcher, GroupsAreBounded) {
  SignatureMatcher m;
  m.feed("INFO: task a:1 blocked for more than 120 seconds.", 1);
  for (int i = 0; i < 1000; ++i) m.feed(" frame+0x1/0x2", 1);
  auto ev = m.finish();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].hit.extra_lines.size(), SignatureMatcher::kMaxExtraLines);
}

TEST(SignatureSummarizer, CountsFirstLastSampleDevices) {
  SignatureMatcher m;
  SignatureSummarizer s;
  s.add(m.feed("unregister_netdevice: waiting for lo to become free. Usage count = 1", 10));
  s.add(m.feed("unregister_netdevice: waiting for lo to become free. Usage count = 1", 20));
  s.add(m.feed("unregister_netdevice: waiting for eth0 to become free. Usage count = 1", 30));
  s.add(m.feed("SLUB: Unable to allocate memory on node -1 (gfp=0x20)", 40));
  s.add(m.feed("  cache: kmalloc-256(7:pod), object size: 256", 40));
  s.add(m.finish());
  auto sums = s.summaries();
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(s.total(), 4u);
  EXPECT_EQ(sums[0].id, "netdev-unregister-wait");
  EXPECT_EQ(sums[0].count, 3u);
  EXPECT_DOUBLE_EQ(sums[0].first_s, 10);
  EXPECT_DOUBLE_EQ(sums[0].last_s, 30);
  EXPECT_EQ(sums[0].sample, "unregister_netdevice: waiting for lo to become free. Usage count = 1");
  EXPECT_EQ(sums[0].devices.at("lo"), 2u);
  EXPECT_EQ(sums[0].devices.at("eth0"), 1u);
  EXPECT_EQ(sums[1].id, "slub-alloc-failure");
  EXPECT_EQ(sums[1].caches.at("kmalloc-256"), 1u);
}

}  // namespace
}  // namespace krepro::detect
