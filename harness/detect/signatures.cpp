#include "harness/detect/signatures.h"

#include <cmath>
#include <cstring>

namespace krepro::detect {
namespace {

using G = Grouping;
using S = Severity;

// Headers are anchored at the message start, allowing short subsystem
// prefixes ("watchdog: ", "rcu: ") and, for page allocation failures, the
// task name. The literal must therefore occur within the first kLiteralWindow
// bytes, which bounds the prefilter's cost on long lines.
constexpr size_t kLiteralWindow = 48;

// Hints: a frame in a hung task's trace that points to a specific bug.
struct TraceHint {
  std::string_view frame;
  std::string_view bug;
};
// net/core/net_namespace.c cleanup_net holds pernet_ops_rwsem while
// netdev_run_todo waits in netdev_wait_allrefs; new netns creation
// (copy_net_ns) and rtnl users then block behind it.
constexpr TraceHint kHungTaskHints[] = {
    {"cleanup_net", "netdev-refcount-leak"},         {"copy_net_ns", "netdev-refcount-leak"},
    {"netdev_run_todo", "netdev-refcount-leak"},     {"rtnl_lock", "netdev-refcount-leak"},
    {"default_device_exit", "netdev-refcount-leak"}, {"mempool_alloc", "kmem-writeback-jitter"},
    {"bvec_alloc", "kmem-writeback-jitter"},
};

const std::vector<Signature>& table() {
  static const std::vector<Signature> kTable = {
      {"netdev-unregister-wait",
       "netdev-refcount-leak",
       S::kError,
       G::kNone,
       "net/core/dev.c",
       "netdev_wait_allrefs_any",
       "a network device is still referenced after unregister; netns teardown (cleanup_net) "
       "is stuck waiting for it",
       {{"unregister_netdevice: waiting for ",
         R"(unregister_netdevice: waiting for (\S+) to become free\. Usage count = (-?\d+))",
         "device,usage_count"}}},
      {"slub-alloc-failure",
       "kmem-writeback-jitter",
       S::kWarning,
       G::kSlubCache,
       "mm/slub.c",
       "slab_out_of_memory",
       "a slab allocation failed (with kmem accounting: the memcg kmem limit); callers such as "
       "bvec_alloc fall back to mempools and sleep",
       {{"SLUB: Unable to allocate memory on node",
         R"(SLUB: Unable to allocate memory on node (-?\d+),? *\(?gfp=(0x[0-9a-fA-F]+)(?:\(([^)]*)\))?)",
         "node,gfp,gfp_flags"}}},
      {"hung-task",
       "generic",
       S::kError,
       G::kTrace,
       "kernel/hung_task.c",
       "check_hung_task",
       "a task sat in D state longer than hung_task_timeout_secs; the call trace says where "
       "(cleanup_net/copy_net_ns: netns teardown stall)",
       {{"INFO: task ", R"(INFO: task (.+):(\d+) blocked for more than (\d+) seconds)",
         "task,pid,seconds"}}},
      {"page-alloc-failure",
       "generic",
       S::kWarning,
       G::kTrace,
       "mm/page_alloc.c",
       "warn_alloc",
       "a page allocation failed (memory pressure or fragmentation for order > 0)",
       {{": page allocation failure",
         R"((\S+): page allocation failure[:.] order:(\d+), mode:\s*(0x[0-9a-fA-F]+)(?:\(([^)]*)\))?)",
         "task,order,mode,gfp_flags"}}},
      {"memcg-oom",
       "generic",
       S::kWarning,
       G::kNone,
       "mm/oom_kill.c",
       "__oom_kill_process / dump_oom_summary",
       "the OOM killer killed a task because its memory cgroup hit its limit",
       {{"oom-kill:constraint=CONSTRAINT_MEMCG", R"(oom-kill:(constraint=CONSTRAINT_MEMCG.*))", "",
         false, true},
        {"Memory cgroup out of memory: Kill",
         R"(Memory cgroup out of memory: Kill(?:ed)? process (\d+) \(([^)]*)\))", "pid,task",
         true}}},
      {"global-oom",
       "generic",
       S::kError,
       G::kNone,
       "mm/oom_kill.c",
       "__oom_kill_process / dump_oom_summary",
       "the whole machine ran out of memory and the OOM killer killed a task (kernel memory "
       "such as tens of thousands of dying memcgs counts too)",
       {{"oom-kill:constraint=CONSTRAINT_NONE", R"(oom-kill:(constraint=CONSTRAINT_NONE.*))", "",
         false, true},
        {"Out of memory: Kill", R"(Out of memory: Kill(?:ed)? process (\d+) \(([^)]*)\))",
         "pid,task", true}}},
      {"soft-lockup",
       "generic",
       S::kError,
       G::kTrace,
       "kernel/watchdog.c",
       "watchdog_timer_fn",
       "a CPU ran kernel code without scheduling for longer than the soft lockup threshold",
       {{"BUG: soft lockup",
         R"((?:NMI )?(?:watchdog: )?BUG: soft lockup - CPU#(\d+) stuck for (\d+)s! \[(.+):(\d+)\])",
         "cpu,seconds,task,pid"}}},
      {"rcu-stall",
       "generic",
       S::kError,
       G::kTrace,
       "kernel/rcu/tree_stall.h",
       "print_other_cpu_stall / print_cpu_stall",
       "an RCU grace period did not complete: a CPU or task did not pass a quiescent state",
       {{"INFO: rcu",
         R"((?:rcu: )?INFO: (rcu_\w+) (self-detected stall|detected expedited stalls|detected stalls?))",
         "flavor,kind"}}},
      {"warning",
       "generic",
       S::kWarning,
       G::kTrace,
       "kernel/panic.c",
       "__warn",
       "a WARN_ON() fired: the kernel detected an unexpected state and continued",
       {{"WARNING: ", R"(WARNING: (?:CPU: (\d+) PID: (\d+) )?at (?:([^\s:]+):(\d+) )?(\S+))",
         "cpu,pid,file,line,function"}}},
      {"bug-oops",
       "generic",
       S::kCritical,
       G::kTrace,
       "arch/x86/kernel/dumpstack.c",
       "__die / page_fault_oops (arch/x86/mm/fault.c), BUG() (include/asm-generic/bug.h)",
       "the kernel hit a fatal error in a task (oops); the task was killed and the kernel "
       "may be unstable",
       {{"BUG: unable to handle", R"(BUG: unable to handle (.*))", "what"},
        {"BUG: kernel NULL pointer dereference", R"(BUG: (kernel NULL pointer dereference.*))",
         "what"},
        {"kernel BUG at ", R"(kernel BUG at ([^\s:]+):(\d+))", "file,line"},
        {"general protection fault", R"(general protection fault(.*))", "what", true},
        {"Oops:", R"(Oops: (.*))", "oops", true}}},
      {"kernel-panic",
       "generic",
       S::kCritical,
       G::kTrace,
       "kernel/panic.c",
       "panic",
       "the kernel panicked and stopped",
       {{"Kernel panic - not syncing", R"(Kernel panic - not syncing:? ?(.*))", "reason"}}},
  };
  return kTable;
}

std::vector<std::string> split_names(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t c = s.find(',');
    out.emplace_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

std::string_view ltrim(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes) {
    if (s.substr(0, p.size()) == p) return true;
  }
  return false;
}

// "k=v,k=v" (mm/oom_kill.c dump_oom_summary); values have no commas.
void parse_key_values(std::string_view s, std::map<std::string, std::string>& out) {
  while (!s.empty()) {
    size_t c = s.find(',');
    std::string_view kv = s.substr(0, c);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && eq > 0) {
      out.emplace(std::string(kv.substr(0, eq)), std::string(rtrim(kv.substr(eq + 1))));
    }
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
}

// "  cache: NAME(MEMCG_ID:MEMCG_NAME), object size: N, ..." (mm/slub.c
// slab_out_of_memory; the memcg suffix is memcg_cache_name on 3.10/4.x).
void parse_slub_cache_line(std::string_view line, std::map<std::string, std::string>& fields) {
  std::string_view t = ltrim(line);
  if (t.substr(0, 6) != "cache:") return;
  t = ltrim(t.substr(6));
  size_t comma = t.find(',');
  std::string_view name = rtrim(t.substr(0, comma));
  size_t open = name.find('(');
  if (open != std::string_view::npos && name.back() == ')') {
    std::string_view inner = name.substr(open + 1, name.size() - open - 2);
    name = name.substr(0, open);
    size_t colon = inner.find(':');
    fields.emplace("memcg_id", std::string(inner.substr(0, colon)));
    if (colon != std::string_view::npos) {
      fields.emplace("memcg_name", std::string(inner.substr(colon + 1)));
    }
  }
  fields.emplace("cache", std::string(name));
  size_t os = t.find("object size: ");
  if (os != std::string_view::npos) {
    std::string_view v = t.substr(os + 13);
    size_t n = 0;
    while (n < v.size() && v[n] >= '0' && v[n] <= '9') ++n;
    if (n > 0) fields.emplace("object_size", std::string(v.substr(0, n)));
  }
}

}  // namespace

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
    case Severity::kCritical:
      return "critical";
  }
  return "unknown";
}

std::span<const Signature> builtin_signatures() { return table(); }

const Signature* find_signature(std::string_view id) {
  for (const auto& s : table()) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

std::shared_ptr<const std::vector<SignatureMatcher::Compiled>> SignatureMatcher::compile(
    std::span<const Signature> tbl) {
  auto out = std::make_shared<std::vector<Compiled>>();
  for (const auto& sig : tbl) {
    for (const auto& pat : sig.patterns) {
      out->push_back(Compiled{
          &sig, &pat,
          std::regex(std::string(pat.regex), std::regex::ECMAScript | std::regex::optimize),
          split_names(pat.fields)});
    }
  }
  return out;
}

SignatureMatcher::SignatureMatcher() {
  static const auto kBuiltin = compile(builtin_signatures());
  compiled_ = kBuiltin;
}

SignatureMatcher::SignatureMatcher(std::span<const Signature> tbl) : compiled_(compile(tbl)) {}

std::optional<SignatureHit> SignatureMatcher::match_header(std::string_view msg,
                                                           const SignaturePattern** matched) const {
  for (const auto& c : *compiled_) {
    size_t at = msg.substr(0, kLiteralWindow + c.pat->literal.size()).find(c.pat->literal);
    if (at == std::string_view::npos) continue;
    std::cmatch m;
    if (!std::regex_search(msg.data(), msg.data() + msg.size(), m, c.re,
                           std::regex_constants::match_continuous)) {
      continue;
    }
    SignatureHit hit;
    hit.id = std::string(c.sig->id);
    hit.bug = std::string(c.sig->bug);
    hit.severity = c.sig->severity;
    for (size_t i = 0; i < c.field_names.size() && i + 1 < m.size(); ++i) {
      if (m[i + 1].matched) hit.fields.emplace(c.field_names[i], m[i + 1].str());
    }
    if (c.pat->key_values && m.size() > 1) {
      parse_key_values(std::string_view(m[1].first, static_cast<size_t>(m[1].length())),
                       hit.fields);
    }
    *matched = c.pat;
    return hit;
  }
  return std::nullopt;
}

// Lines that belong to the report a header started: the hung-task / oops
// layout of kernel/hung_task.c check_hung_task, lib/dump_stack.c and
// arch/x86/kernel/dumpstack.c show_regs/show_trace_log_lvl.
bool SignatureMatcher::continues(std::string_view raw) const {
  if (open_grouping_ == Grouping::kNone || raw.empty()) return false;
  if (raw[0] == ' ' || raw[0] == '\t') return true;
  if (open_grouping_ == Grouping::kSlubCache) return false;
  if (starts_with_any(raw, {"Call Trace:",
                            "<TASK>",
                            "</TASK>",
                            "<IRQ>",
                            "</IRQ>",
                            "<NMI>",
                            "</NMI>",
                            "[<",
                            "? ",
                            "Tainted:",
                            "Not tainted",
                            "\"echo 0 >",
                            "task:",
                            "CPU:",
                            "Hardware name:",
                            "RIP:",
                            "RSP:",
                            "RAX:",
                            "RDX:",
                            "RBP:",
                            "R10:",
                            "R13:",
                            "FS:",
                            "CS:",
                            "CR2:",
                            "DR0:",
                            "DR3:",
                            "DR6:",
                            "Code:",
                            "Modules linked in:",
                            "IP:",
                            "PGD ",
                            "P4D ",
                            "PUD ",
                            "PMD ",
                            "PTE ",
                            "#PF:",
                            "invalid opcode:",
                            "Workqueue:",
                            "Stack:",
                            "---[ end",
                            "Kernel Offset:",
                            "Sending NMI",
                            "NMI backtrace",
                            "rcu: ",
                            "\t(",
                            "(detected by",
                            "Showing busy",
                            "irq event stamp",
                            "hardirqs last",
                            "softirqs last",
                            "Exception stack",
                            "pc : ",
                            "lr : ",
                            "sp : ",
                            "Call trace:",
                            "PKRU:",
                            "Shutting down cpus",
                            "RSP <",
                            "CR0:",
                            "ES:",
                            "Backtrace:",
                            "Rebooting in"})) {
    return true;
  }
  // A bare frame "func+0x12/0x34" or an old task line "comm  D ffff... 0 pid".
  size_t sp = raw.find(' ');
  std::string_view first = raw.substr(0, sp);
  if (first.find("+0x") != std::string_view::npos && first.find("/0x") != std::string_view::npos) {
    return true;
  }
  if (sp != std::string_view::npos) {
    std::string_view rest = ltrim(raw.substr(sp));
    if (rest.size() > 2 && rest[0] == 'D' && rest[1] == ' ') return true;
  }
  return false;
}

void SignatureMatcher::close(std::vector<MatchEvent>& out) {
  if (!open_) return;
  if (open_->id == "hung-task") {
    for (const auto& line : open_->extra_lines) {
      for (const auto& h : kHungTaskHints) {
        if (line.find(h.frame) != std::string::npos && !open_->fields.count("hint")) {
          open_->fields.emplace("hint", std::string(h.bug));
          open_->fields.emplace("hint_frame", std::string(h.frame));
          open_changed_ = true;
        }
      }
    }
  }
  if (open_changed_) out.push_back(MatchEvent{MatchEvent::Kind::kUpdate, std::move(*open_)});
  open_.reset();
  open_changed_ = false;
  open_grouping_ = Grouping::kNone;
}

std::vector<MatchEvent> SignatureMatcher::feed(std::string_view line, double ts_s,
                                               std::string_view time_text) {
  ++lines_;
  std::vector<MatchEvent> out;
  line = rtrim(line);
  std::string_view msg = ltrim(line);
  const SignaturePattern* pat = nullptr;
  auto hit = msg.empty() ? std::nullopt : match_header(msg, &pat);
  if (hit) {
    // Joins only a hit that another pattern of the same signature started:
    // a burst of identical lines (rate-limited OOM kills) still counts each.
    bool joins = pat->joins_open && hit->id == last_id_ && pat != last_pattern_;
    // A second line of the same report ("Oops:" a few lines after "BUG:
    // unable to handle", with unrelated lines in between) does not count
    // again.
    if (joins && !(open_ && open_->id == hit->id) && lines_ - last_header_line_ <= kJoinWindow) {
      return out;
    }
    if (joins && open_ && open_->id == hit->id) {
      for (auto& [k, v] : hit->fields) open_->fields.emplace(k, v);
      if (open_->extra_lines.size() < kMaxExtraLines) open_->extra_lines.emplace_back(msg);
      open_changed_ = true;
      return out;
    }
    close(out);
    last_id_ = hit->id;
    last_pattern_ = pat;
    last_header_line_ = lines_;
    hit->ts_s = ts_s;
    hit->time_text = std::string(time_text);
    hit->sample = std::string(msg);
    out.push_back(MatchEvent{MatchEvent::Kind::kHit, *hit});
    const Signature* sig = nullptr;
    for (const auto& c : *compiled_) {
      if (c.sig->id == hit->id) {
        sig = c.sig;
        break;
      }
    }
    open_grouping_ = sig ? sig->grouping : Grouping::kNone;
    open_ = std::move(hit);
    return out;
  }
  if (open_ && continues(line)) {
    if (open_->extra_lines.size() < kMaxExtraLines) {
      open_->extra_lines.emplace_back(line);
      if (open_grouping_ == Grouping::kSlubCache) parse_slub_cache_line(line, open_->fields);
      open_changed_ = true;
    }
    // "---[ end trace ... ]---" ends an oops/warning report.
    if (msg.substr(0, 8) == "---[ end") close(out);
    return out;
  }
  close(out);
  return out;
}

std::vector<MatchEvent> SignatureMatcher::finish() {
  std::vector<MatchEvent> out;
  close(out);
  return out;
}

void SignatureSummarizer::add(const MatchEvent& ev) {
  const SignatureHit& h = ev.hit;
  auto [it, inserted] = by_id_.try_emplace(h.id);
  SignatureSummary& s = it->second;
  if (inserted) {
    s.id = h.id;
    s.bug = h.bug;
    s.severity = h.severity;
  }
  if (ev.kind == MatchEvent::Kind::kHit) {
    ++total_;
    if (s.count == 0) {
      s.first_s = h.ts_s;
      s.first_text = h.time_text;
      s.sample = h.sample;
    }
    ++s.count;
    s.last_s = h.ts_s;
    s.last_text = h.time_text;
    auto dev = h.fields.find("device");
    if (dev != h.fields.end()) ++s.devices[dev->second];
  } else {
    auto cache = h.fields.find("cache");
    if (cache != h.fields.end()) ++s.caches[cache->second];
  }
}

std::vector<SignatureSummary> SignatureSummarizer::summaries() const {
  std::vector<SignatureSummary> out;
  for (const auto& sig : builtin_signatures()) {
    auto it = by_id_.find(std::string(sig.id));
    if (it != by_id_.end() && it->second.count > 0) out.push_back(it->second);
  }
  for (const auto& [id, s] : by_id_) {
    if (!find_signature(id) && s.count > 0) out.push_back(s);
  }
  return out;
}

}  // namespace krepro::detect
