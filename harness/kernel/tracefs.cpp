#include "harness/kernel/tracefs.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <thread>

#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

namespace {

// include/uapi/linux/magic.h
constexpr long kTracefsMagic = 0x74726163;

bool has_prefix(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string last_component(const std::string& p) {
  auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// /proc/self/mounts escapes space, tab, newline and backslash as \ooo
// (fs/proc_namespace.c show_vfsmnt → seq_escape).
std::string unescape_mount_path(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '7' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> find_tracefs_mount(std::string_view text) {
  for (const auto& line : fs::split(text, '\n')) {
    auto f = fs::split(line, ' ');
    if (f.size() >= 3 && f[2] == "tracefs") return unescape_mount_path(f[1]);
  }
  return std::nullopt;
}

std::string choose_trace_clock(std::string_view text, const std::string& want, std::string* note) {
  std::vector<std::string> clocks;
  for (auto c : fs::split(text, ' ')) {
    c = fs::trim(c);
    if (c.size() >= 2 && c.front() == '[' && c.back() == ']') c = c.substr(1, c.size() - 2);
    if (!c.empty()) clocks.push_back(c);
  }
  auto has = [&](const std::string& c) {
    for (const auto& x : clocks)
      if (x == c) return true;
    return false;
  };
  if (has(want)) return want;
  // "global" is ordered across CPUs; "local" (the default) is per-CPU
  // sched_clock. Neither is CLOCK_MONOTONIC: timestamps then only compare
  // with each other, not with the run timeline.
  for (const char* c : {"global", "local"}) {
    if (has(c)) {
      if (note)
        *note = "trace_clock has no '" + want + "'; using '" + c + "' (not CLOCK_MONOTONIC)";
      return c;
    }
  }
  if (note) *note = "trace_clock lists none of " + want + ", global, local";
  return clocks.empty() ? std::string() : clocks.front();
}

std::string kprobe_event_prefix(const std::string& instance_name) {
  std::string s = instance_name;
  for (auto& c : s)
    if (c == '-') c = '_';
  return s;
}

struct TracefsInstance::State {
  std::string name;
  std::string root;
  std::string dir;
  std::string clock;
  std::string clock_note;
  std::string mount_dir;  // non-empty: ours, unmount at the end
  bool mkdir_done = false;
  bool real = false;                 // a real tracefs (not a fake tree of plain files)
  std::vector<std::string> events;   // "system:event", enabled by us
  std::vector<std::string> kprobes;  // event names we added
  int kprobe_seq = 0;
  bool closed = false;

  // Reader.
  UniqueFd pipe;
  UniqueFd wake;
  std::thread thread;
  LineCallback cb;
  int reader_nice = 10;
  std::string pending;
  std::atomic<uint64_t> lines{0};
  std::atomic<uint64_t> bytes{0};

  // Control files take one write each. Tracefs files must not be opened
  // with O_TRUNC (on "trace" it clears the buffer, on set_event all events,
  // on kprobe_events it deletes every probe: kernel/trace/trace_kprobe.c
  // probes_open → dyn_events_release_all). A fake tree's plain files need
  // it to read back only what was written last.
  Result<void> write_ctl(const std::string& path, std::string_view data, bool append = false) {
    int flags = O_WRONLY | O_CLOEXEC;
    if (append)
      flags |= O_APPEND;
    else if (!real)
      flags |= O_TRUNC;
    UniqueFd fd(::open(path.c_str(), flags));
    if (!fd) return errno_error("open " + path);
    ssize_t w = ::write(fd.get(), data.data(), data.size());
    if (w < 0) return errno_error("write '" + std::string(fs::trim(data)) + "' to " + path);
    return {};
  }

  void deliver_lines(bool flush) {
    size_t start = 0;
    while (true) {
      size_t nl = pending.find('\n', start);
      if (nl == std::string::npos) break;
      if (nl > start) {
        lines.fetch_add(1, std::memory_order_relaxed);
        if (cb) cb(std::string_view(pending).substr(start, nl - start));
      }
      start = nl + 1;
    }
    if (flush && start < pending.size()) {
      lines.fetch_add(1, std::memory_order_relaxed);
      if (cb) cb(std::string_view(pending).substr(start));
      start = pending.size();
    }
    pending.erase(0, start);
  }

  // Returns false at end of input or on a read error.
  bool drain(std::string& buf) {
    while (true) {
      ssize_t r = ::read(pipe.get(), buf.data(), buf.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN;
      }
      // End of a fake tree's plain file; the poll timeout paces re-reads.
      if (r == 0) return true;
      bytes.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
      pending.append(buf.data(), static_cast<size_t>(r));
      deliver_lines(false);
    }
  }

  void loop() {
    if (reader_nice != 0) {
      // Formatting trace_pipe text costs the kernel a few µs per event
      // (kernel/trace/trace.c tracing_read_pipe → print_trace_line), on the
      // reader's CPU time. A niced reader yields to the workload and catches
      // up in idle time; the ring buffer holds the backlog meanwhile and
      // overruns() reports what it could not. Not SCHED_IDLE: CPU-bound
      // churners would starve it completely. setpriority on a tid sets that
      // thread's nice value (Linux, kernel/sys.c set_one_prio).
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), reader_nice);
    }
    std::string buf(1 << 16, '\0');
    // Wait on the eventfd only and read every 200 ms. Polling the all-CPU
    // trace_pipe wakes the reader on every event: buffer_percent applies to
    // per-CPU readers only (kernel/trace/ring_buffer.c), and each wakeup
    // here is a self-IPI that exits to the hypervisor — measured: −15..−23 %
    // workload ops/s with the per-event wakeups, −2 % with timed reads.
    pollfd fds[2] = {{wake.get(), POLLIN, 0}, {pipe.get(), POLLIN, 0}};
    while (true) {
      fds[0].revents = fds[1].revents = 0;
      int n = ::poll(fds, 1, 200);
      if (n < 0 && errno != EINTR) break;
      bool stop = fds[0].revents != 0;
      if (!drain(buf)) break;
      if (stop) break;
    }
    drain(buf);
    deliver_lines(true);
  }

  void stop_reader() {
    if (!thread.joinable()) return;
    uint64_t one = 1;
    // An eventfd write only fails on counter overflow.
    [[maybe_unused]] ssize_t w = ::write(wake.get(), &one, sizeof(one));
    thread.join();
    pipe.reset();
  }

  std::vector<std::string> teardown() {
    std::vector<std::string> errs;
    if (closed) return errs;
    closed = true;
    auto note = [&](const Result<void>& r) {
      if (!r) errs.push_back(r.error().message());
    };
    if (mkdir_done) {
      note(write_ctl(dir + "/tracing_on", "0"));
      stop_reader();
      for (auto it = events.rbegin(); it != events.rend(); ++it) {
        auto c = it->find(':');
        note(write_ctl(dir + "/events/" + it->substr(0, c) + "/" + it->substr(c + 1) + "/enable",
                       "0"));
      }
      events.clear();
      // A probe enabled in any instance cannot be deleted (EBUSY from
      // trace_kprobe.c unregister_trace_kprobe), so they were disabled above.
      for (auto it = kprobes.rbegin(); it != kprobes.rend(); ++it) {
        note(write_ctl(root + "/kprobe_events", "-:kprobes/" + *it + "\n", /*append=*/true));
      }
      kprobes.clear();
      if (real) {
        if (::rmdir(dir.c_str()) != 0) errs.push_back("rmdir " + dir + ": " + std::strerror(errno));
      } else {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
      mkdir_done = false;
    }
    stop_reader();
    if (!mount_dir.empty()) {
      if (::umount2(mount_dir.c_str(), 0) != 0) {
        // Someone (a shell, another reader) holds a file in it: detach so
        // nothing of ours stays mounted; it goes once they let go.
        errs.push_back("umount " + mount_dir + ": " + std::strerror(errno) + " (detached)");
        ::umount2(mount_dir.c_str(), MNT_DETACH);
      }
      ::rmdir(mount_dir.c_str());
      mount_dir.clear();
    }
    return errs;
  }
};

TracefsInstance::TracefsInstance(std::unique_ptr<State> s) : state_(std::move(s)) {}
TracefsInstance::TracefsInstance(TracefsInstance&&) noexcept = default;
TracefsInstance& TracefsInstance::operator=(TracefsInstance&& o) noexcept {
  if (this != &o) {
    if (state_) state_->teardown();
    state_ = std::move(o.state_);
  }
  return *this;
}
TracefsInstance::~TracefsInstance() {
  if (state_) state_->teardown();
}

Result<TracefsInstance> TracefsInstance::create(const std::string& name, const TracefsOptions& o) {
  if (!has_prefix(name, "krepro-") || name.find('/') != std::string::npos)
    return make_error(EINVAL, "tracefs instance name '" + name + "' must start with krepro-");
  auto s = std::make_unique<State>();
  s->name = name;
  // From here on, a failure returns and ~State... does not run teardown, so
  // wrap the state in an instance early: its destructor undoes partial work.
  TracefsInstance inst(std::move(s));
  State& st = *inst.state_;
  if (!o.root.empty()) {
    st.root = o.root;
  } else {
    auto text = fs::read_file(o.mounts_path);
    KREPRO_TRY_CTX(text, "tracefs");
    if (auto m = find_tracefs_mount(*text)) {
      st.root = *m;
    } else {
      if (o.private_mount_dir.empty())
        return make_error(ENOENT, "tracefs is not mounted and no private mount folder was given");
      if (!has_prefix(last_component(o.private_mount_dir), "krepro-"))
        return make_error(
            EINVAL, "private tracefs mount '" + o.private_mount_dir + "' must be a krepro- folder");
      KREPRO_TRY_CTX(fs::make_dirs(o.private_mount_dir), "tracefs private mount");
      // fs/tracefs/inode.c: every mount of tracefs shows the same tree, so
      // a second mount point changes nothing for other users.
      if (::mount("nodev", o.private_mount_dir.c_str(), "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  nullptr) != 0) {
        int e = errno;
        ::rmdir(o.private_mount_dir.c_str());
        return make_error(e, "mount tracefs at " + o.private_mount_dir);
      }
      st.mount_dir = o.private_mount_dir;
      st.root = o.private_mount_dir;
    }
  }
  struct statfs sf {};
  st.real = ::statfs(st.root.c_str(), &sf) == 0 && sf.f_type == kTracefsMagic;
  if (!fs::is_dir(st.root + "/instances"))
    return make_error(ENOENT, st.root + "/instances missing (kernel without tracing instances?)");
  st.dir = st.root + "/instances/" + name;
  if (o.before_mkdir) KREPRO_TRY_CTX(o.before_mkdir(st.dir), "tracefs instance " + name);
  // kernel/trace/trace.c instance_mkdir → trace_array_create: a new buffer
  // with its own events/, trace_clock, tracing_on and trace_pipe.
  if (::mkdir(st.dir.c_str(), 0755) != 0) return errno_error("mkdir " + st.dir);
  st.mkdir_done = true;
  if (o.after_mkdir) o.after_mkdir(st.dir);

  auto clocks = fs::read_file(st.dir + "/trace_clock");
  KREPRO_TRY_CTX(clocks, "tracefs instance " + name);
  st.clock = choose_trace_clock(*clocks, o.clock, &st.clock_note);
  if (!st.clock.empty()) KREPRO_TRY(st.write_ctl(st.dir + "/trace_clock", st.clock));
  if (o.buffer_size_kb > 0)
    KREPRO_TRY(st.write_ctl(st.dir + "/buffer_size_kb", std::to_string(o.buffer_size_kb)));
  return inst;
}

Result<void> TracefsInstance::enable_event(const std::string& system, const std::string& event) {
  if (!state_ || state_->closed) return make_error(EBADF, "tracefs instance closed");
  std::string p = state_->dir + "/events/" + system + "/" + event + "/enable";
  if (!fs::exists(p)) return make_error(ENOENT, "no event " + system + ":" + event);
  KREPRO_TRY(state_->write_ctl(p, "1"));
  state_->events.push_back(system + ":" + event);
  return {};
}

Result<std::string> TracefsInstance::add_kprobe_pair(const std::string& func) {
  if (!state_ || state_->closed) return make_error(EBADF, "tracefs instance closed");
  State& st = *state_;
  std::string ke = st.root + "/kprobe_events";
  if (!fs::exists(ke)) return make_error(ENOENT, "no kprobe_events (kernel without KPROBE_EVENTS)");
  for (char c : func) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'))
      return make_error(EINVAL, "bad kernel function name '" + func + "'");
  }
  std::string base = kprobe_event_prefix(st.name) + "_" + std::to_string(st.kprobe_seq++);
  // Documentation/trace/kprobetrace.rst: "p:[GRP/]EVENT SYM" and
  // "r:[GRP/]EVENT SYM"; the default group is "kprobes".
  for (const auto& [ev, line] : {std::pair{base, "p:" + base + " " + func + "\n"},
                                 std::pair{base + "_ret", "r:" + base + "_ret " + func + "\n"}}) {
    auto w = st.write_ctl(ke, line, /*append=*/true);
    if (!w) {
      auto& e = w.error();
      e.wrap("kprobe " + func);
      return Unexpected(e);
    }
    st.kprobes.push_back(ev);
    std::string en = st.dir + "/events/kprobes/" + ev + "/enable";
    if (!st.real && !fs::exists(en)) continue;  // fake tree without event dirs
    KREPRO_TRY(st.write_ctl(en, "1"));
    st.events.push_back("kprobes:" + ev);
  }
  return base;
}

Result<void> TracefsInstance::set_tracing_on(bool on) {
  if (!state_ || state_->closed) return make_error(EBADF, "tracefs instance closed");
  return state_->write_ctl(state_->dir + "/tracing_on", on ? "1" : "0");
}

Result<void> TracefsInstance::start_reader(LineCallback cb, int nice) {
  if (!state_ || state_->closed) return make_error(EBADF, "tracefs instance closed");
  State& st = *state_;
  if (st.thread.joinable()) return make_error(EBUSY, "trace_pipe reader already started");
  st.pipe.reset(::open((st.dir + "/trace_pipe").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!st.pipe) return errno_error("open " + st.dir + "/trace_pipe");
  st.wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!st.wake) return errno_error("eventfd");
  st.cb = std::move(cb);
  st.reader_nice = nice;
  State* s = &st;
  st.thread = std::thread([s] { s->loop(); });
  return {};
}

void TracefsInstance::stop_reader() {
  if (state_) state_->stop_reader();
}

std::vector<std::string> TracefsInstance::close() {
  return state_ ? state_->teardown() : std::vector<std::string>{};
}

const std::string& TracefsInstance::name() const { return state_->name; }
const std::string& TracefsInstance::root() const { return state_->root; }
const std::string& TracefsInstance::dir() const { return state_->dir; }
const std::string& TracefsInstance::clock() const { return state_->clock; }
const std::string& TracefsInstance::clock_note() const { return state_->clock_note; }
bool TracefsInstance::private_mount() const { return !state_->mount_dir.empty(); }
const std::vector<std::string>& TracefsInstance::enabled_events() const { return state_->events; }
uint64_t TracefsInstance::lines_read() const { return state_ ? state_->lines.load() : 0; }
uint64_t TracefsInstance::overruns() const {
  if (!state_ || state_->closed) return 0;
  auto cpus = fs::list_dir(state_->dir + "/per_cpu");
  if (!cpus) return 0;
  uint64_t n = 0;
  for (const auto& c : *cpus) {
    auto t = fs::read_file(state_->dir + "/per_cpu/" + c + "/stats", 4096);
    if (!t) continue;
    // Line-anchored: "commit overrun: " counts something else.
    for (const auto& line : fs::split(*t, '\n'))
      if (has_prefix(line, "overrun: ")) n += std::strtoull(line.c_str() + 9, nullptr, 10);
  }
  return n;
}
uint64_t TracefsInstance::bytes_read() const { return state_ ? state_->bytes.load() : 0; }

}  // namespace krepro::kernel
