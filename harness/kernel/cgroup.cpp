#include "harness/kernel/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <thread>

#include "harness/util/fs.h"

namespace krepro::kernel {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo
// (fs/proc_namespace.c show_mountinfo → seq_path_root with " \t\n\\").
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Joins a mount point and a cgroup path relative to the mount's root.
std::string under_mount(const CgroupMount& m, const std::string& cg_path) {
  std::string rel = cg_path;
  if (m.root != "/" && rel.rfind(m.root, 0) == 0) rel = rel.substr(m.root.size());
  if (rel.empty() || rel == "/") return m.mount_point;
  return fs::join(m.mount_point, rel);
}

// A path is inside a mount when it is the mount point or below it.
bool inside(const std::string& path, const std::string& mount_point) {
  if (path.rfind(mount_point, 0) != 0) return false;
  return path.size() == mount_point.size() || path[mount_point.size()] == '/';
}

}  // namespace

bool is_known_controller(std::string_view name) {
  // include/linux/cgroup_subsys.h SUBSYS() list (6.x) plus "io", which is
  // blkio's cgroup2 name (block/blk-cgroup.c io_cgrp_subsys legacy_name).
  static const char* kAll[] = {"cpuset",  "cpu",     "cpuacct", "io",         "blkio",    "memory",
                               "devices", "freezer", "net_cls", "perf_event", "net_prio", "hugetlb",
                               "pids",    "rdma",    "misc",    "dmem",       "debug"};
  return std::find(std::begin(kAll), std::end(kAll), name) != std::end(kAll);
}

bool is_v2_controller(std::string_view name) {
  static const char* kV2[] = {"cpuset", "cpu",  "io",   "memory", "hugetlb",
                              "pids",   "rdma", "misc", "dmem",   "perf_event"};
  return std::find(std::begin(kV2), std::end(kV2), name) != std::end(kV2);
}

std::vector<std::string> split_controller_list(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty() && std::find(out.begin(), out.end(), cur) == out.end()) out.push_back(cur);
    cur.clear();
  };
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\t') {
      flush();
    } else {
      cur += c;
    }
  }
  flush();
  return out;
}

std::string V1Hierarchy::key() const {
  std::string k;
  for (const auto& n : named) k += (k.empty() ? "" : ",") + n;
  return k;
}

bool V1Hierarchy::has(std::string_view controller) const {
  return std::find(mount.controllers.begin(), mount.controllers.end(), controller) !=
         mount.controllers.end();
}

Result<CgroupLayout> CgroupLayout::discover(const std::string& proc_self,
                                            const std::string& fs_prefix) {
  CgroupLayout l;
  auto mi = fs::read_file(proc_self + "/mountinfo");
  KREPRO_TRY_CTX(mi, "cgroup discovery");
  for (const auto& line : fs::split(*mi, '\n')) {
    // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto pre = fs::split(std::string_view(line).substr(0, dash), ' ');
    auto post = fs::split(std::string_view(line).substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3) continue;
    CgroupMount m;
    m.root = unescape_mountinfo(pre[3]);
    m.mount_point = fs_prefix + unescape_mountinfo(pre[4]);
    if (post[0] == "cgroup2") {
      m.version = CgroupVersion::kV2;
      if (auto c = fs::read_line(fs::join(m.mount_point, "cgroup.controllers"))) {
        m.controllers = fs::split(*c, ' ');
      }
      if (!l.v2_) l.v2_ = std::move(m);
    } else if (post[0] == "cgroup") {
      for (const auto& opt : fs::split(post[2], ',')) {
        if (opt == "rw" || opt == "ro" || opt.find('=') != std::string::npos) {
          // name=systemd is a named hierarchy without a controller.
          if (opt.rfind("name=", 0) == 0) m.controllers.push_back(opt);
          continue;
        }
        static const char* kNotControllers[] = {"relatime", "noatime",        "nosuid",   "nodev",
                                                "noexec",   "clone_children", "noprefix", "xattr"};
        if (std::find_if(std::begin(kNotControllers), std::end(kNotControllers),
                         [&](const char* n) { return opt == n; }) != std::end(kNotControllers))
          continue;
        m.controllers.push_back(opt);
      }
      l.v1_.push_back(std::move(m));
    }
  }
  auto cg = fs::read_file(proc_self + "/cgroup");
  KREPRO_TRY_CTX(cg, "cgroup discovery");
  // "hierarchy-id:controller-list:path"; v2 is "0::path".
  for (const auto& line : fs::split(*cg, '\n')) {
    auto c1 = line.find(':');
    auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (line.substr(0, c1) == "0" && ctrls.empty()) {
      l.self_v2_ = path;
      l.have_self_v2_ = true;
      continue;
    }
    for (const auto& c : fs::split(ctrls, ',')) l.self_v1_[c] = path;
  }
  return l;
}

const CgroupMount* CgroupLayout::v1(const std::string& controller) const {
  for (const auto& m : v1_) {
    if (std::find(m.controllers.begin(), m.controllers.end(), controller) != m.controllers.end())
      return &m;
  }
  return nullptr;
}

Result<std::string> CgroupLayout::self_dir_v1(const std::string& controller) const {
  const CgroupMount* m = v1(controller);
  if (!m) return make_error(ENOENT, "no cgroup v1 hierarchy mounted for " + controller);
  auto it = self_v1_.find(controller);
  if (it == self_v1_.end()) return make_error(ENOENT, "/proc/self/cgroup has no " + controller);
  return under_mount(*m, it->second);
}

Result<std::string> CgroupLayout::self_dir_v2() const {
  if (!v2_) return make_error(ENOENT, "no cgroup2 hierarchy mounted");
  if (!have_self_v2_) return make_error(ENOENT, "/proc/self/cgroup has no cgroup2 entry");
  return under_mount(*v2_, self_v2_);
}

bool CgroupLayout::self_at_root_v1(const std::string& controller) const {
  auto it = self_v1_.find(controller);
  return it == self_v1_.end() || it->second == "/";
}

Result<std::vector<V1Hierarchy>> CgroupLayout::v1_hierarchies(
    const std::vector<std::string>& controllers) const {
  std::vector<V1Hierarchy> out;
  for (const auto& c : controllers) {
    const CgroupMount* m = v1(c);
    if (!m) return make_error(ENOENT, "no cgroup v1 hierarchy mounted for " + c);
    auto it = std::find_if(out.begin(), out.end(), [&](const V1Hierarchy& h) {
      return h.mount.mount_point == m->mount_point;
    });
    if (it == out.end()) {
      out.push_back(V1Hierarchy{*m, {c}});
    } else if (std::find(it->named.begin(), it->named.end(), c) == it->named.end()) {
      it->named.push_back(c);
    }
  }
  return out;
}

Result<CgroupLayout::ParentSpec> CgroupLayout::parse_parent(std::string_view text) const {
  ParentSpec spec;
  // ':' separates, as in PATH: systemd mounts co-mounted v1 hierarchies at
  // /sys/fs/cgroup/cpu,cpuacct, so a comma can be part of a directory.
  for (const auto& raw : fs::split(text, ':')) {
    std::string e = fs::trim(raw);
    if (e.empty()) continue;
    if (e[0] != '/' || e.find("/../") != std::string::npos ||
        (e.size() >= 3 && e.compare(e.size() - 3, 3, "/..") == 0))
      return make_error(EINVAL,
                        "cgroup_parent entry '" + e + "' must be an absolute path without ..");
    while (e.size() > 1 && e.back() == '/') e.pop_back();
    // The innermost mount holding the path (mount points do not nest in
    // practice, but a longer match is the more specific one).
    // Symlinks resolved first (/sys/fs/cgroup/cpu -> cpu,cpuacct on
    // systemd hosts); a path that does not exist stays as written.
    std::error_code ec;
    std::string canon = std::filesystem::weakly_canonical(e, ec).string();
    if (ec || canon.empty()) canon = e;
    while (canon.size() > 1 && canon.back() == '/') canon.pop_back();
    const CgroupMount* best = nullptr;
    auto consider = [&](const CgroupMount& m) {
      if (inside(canon, m.mount_point) &&
          (!best || m.mount_point.size() > best->mount_point.size()))
        best = &m;
    };
    for (const auto& m : v1_) consider(m);
    if (v2_) consider(*v2_);
    if (best) {
      e = canon;
      if (!spec.by_mount.emplace(best->mount_point, e).second)
        return make_error(EINVAL, "cgroup_parent names two directories in the hierarchy at " +
                                      best->mount_point + " (" + spec.by_mount[best->mount_point] +
                                      ", " + e + ")");
    } else {
      if (spec.everywhere)
        return make_error(EINVAL, "cgroup_parent has two cgroup paths for every hierarchy (" +
                                      *spec.everywhere + ", " + e +
                                      "); give directories inside a mount for the others");
      spec.everywhere = e;
    }
  }
  return spec;
}

Result<void> CgroupLayout::check_cgroup_parent(std::string_view cgroup_parent) const {
  auto s = parse_parent(cgroup_parent);
  KREPRO_TRY(s);
  return {};
}

Result<std::string> CgroupLayout::run_parent(const CgroupMount& m, const std::string& self_dir,
                                             bool at_root, const std::string& what,
                                             std::string_view cgroup_parent) const {
  auto spec = parse_parent(cgroup_parent);
  KREPRO_TRY(spec);
  if (auto it = spec->by_mount.find(m.mount_point); it != spec->by_mount.end()) return it->second;
  if (spec->everywhere) return under_mount(m, *spec->everywhere);
  // DESIGN.md: never at a hierarchy root unless cgroup_parent says so.
  if (at_root)
    return make_error(EPERM, "krepro runs at the root of the " + what +
                                 " hierarchy; pass --set cgroup_parent=DIR (a directory inside " +
                                 m.mount_point +
                                 ", or a cgroup path such as / for every hierarchy) to create "
                                 "cgroups there");
  return self_dir;
}

Result<std::string> CgroupLayout::run_parent_v1(const std::string& controller,
                                                std::string_view cgroup_parent) const {
  const CgroupMount* m = v1(controller);
  if (!m) return make_error(ENOENT, "no cgroup v1 hierarchy mounted for " + controller);
  auto self = self_dir_v1(controller);
  // Without a /proc/self/cgroup line an explicit parent still works.
  std::string dir = self ? *self : std::string();
  if (!self && cgroup_parent.empty()) return Unexpected(self.error());
  return run_parent(*m, dir, self_at_root_v1(controller), "v1 " + controller, cgroup_parent);
}

Result<std::string> CgroupLayout::run_parent_v2(std::string_view cgroup_parent) const {
  if (!v2_) return make_error(ENOENT, "no cgroup2 hierarchy mounted");
  auto self = self_dir_v2();
  std::string dir = self ? *self : std::string();
  if (!self && cgroup_parent.empty()) return Unexpected(self.error());
  return run_parent(*v2_, dir, self && *self == v2_->mount_point, "cgroup2", cgroup_parent);
}

Result<Cgroup> Cgroup::create(const std::string& parent, const std::string& name,
                              CgroupVersion version) {
  std::string path = fs::join(parent, name);
  if (::mkdir(path.c_str(), 0755) != 0) return errno_error("mkdir " + path);
  return Cgroup(std::move(path), version);
}

Cgroup Cgroup::adopt(std::string path, CgroupVersion version) {
  return Cgroup(std::move(path), version);
}

Cgroup::~Cgroup() {
  if (!path_.empty()) ::rmdir(path_.c_str());
}

Cgroup::Cgroup(Cgroup&& o) noexcept : path_(std::move(o.path_)), version_(o.version_) {
  o.path_.clear();
}

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
  if (this != &o) {
    if (!path_.empty()) ::rmdir(path_.c_str());
    path_ = std::move(o.path_);
    version_ = o.version_;
    o.path_.clear();
  }
  return *this;
}

Result<void> Cgroup::write(const std::string& file, std::string_view value) const {
  return fs::write_file(fs::join(path_, file), value);
}

Result<std::string> Cgroup::read(const std::string& file) const {
  return fs::read_file(fs::join(path_, file));
}

KmemState Cgroup::enable_kmem_like_runc() const {
  KmemState st;
  const std::string f = fs::join(path_, "memory.kmem.limit_in_bytes");
  st.file_present = fs::exists(f);
  if (!st.file_present) return st;
  auto w1 = fs::write_file(f, "1");
  if (!w1) {
    st.err = w1.error().err();
    return st;
  }
  // mm/memcontrol-v1.c memcg_update_kmem_max rounds to pages; a kernel
  // that ignores the limit (6.x: deprecated, no-op) reads back PAGE_COUNTER_MAX.
  if (auto back = fs::read_line(f)) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(back->data(), back->data() + back->size(), v);
    st.enforced = ec == std::errc() && v <= 1u << 20;
  }
  auto w2 = fs::write_file(f, "-1");
  if (!w2) {
    st.err = w2.error().err();
    return st;
  }
  st.write_ok = true;
  return st;
}

Result<void> Cgroup::set_cpuset(std::string_view cpus, std::string_view mems) const {
  // cpus first: kernel/cgroup/cpuset.c checks neither against the other
  // here, but runc writes them in this order too.
  KREPRO_TRY(write("cpuset.cpus", cpus));
  return write("cpuset.mems", mems);
}

Result<void> Cgroup::copy_cpuset_from(const std::string& dir) const {
  auto cpus = fs::read_line(fs::join(dir, "cpuset.cpus"));
  KREPRO_TRY_CTX(cpus, "cpuset of " + dir);
  auto mems = fs::read_line(fs::join(dir, "cpuset.mems"));
  KREPRO_TRY_CTX(mems, "cpuset of " + dir);
  return set_cpuset(*cpus, *mems);
}

Result<UniqueFd> Cgroup::open_procs() const {
  std::string f = fs::join(path_, "cgroup.procs");
  UniqueFd fd(::open(f.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + f);
  return fd;
}

Result<void> Cgroup::add_pid(pid_t pid) const { return write("cgroup.procs", std::to_string(pid)); }

Result<std::vector<pid_t>> Cgroup::pids() const {
  auto t = read("cgroup.procs");
  KREPRO_TRY(t);
  std::vector<pid_t> out;
  for (const auto& s : fs::split(*t, '\n')) {
    pid_t p = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), p);
    if (ec == std::errc()) out.push_back(p);
  }
  return out;
}

Result<std::map<std::string, uint64_t>> Cgroup::read_stat(const std::string& file) const {
  auto t = read(file);
  KREPRO_TRY(t);
  return parse_flat_keyed(*t);
}

Result<void> Cgroup::remove() {
  if (path_.empty()) return {};
  if (::rmdir(path_.c_str()) != 0) return errno_error("rmdir " + path_);
  path_.clear();
  return {};
}

std::string Cgroup::release() { return std::exchange(path_, std::string()); }

std::map<std::string, uint64_t> parse_flat_keyed(std::string_view text) {
  std::map<std::string, uint64_t> out;
  for (const auto& line : fs::split(text, '\n')) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(line.data() + sp + 1, line.data() + line.size(), v);
    if (ec == std::errc()) out[line.substr(0, sp)] = v;
  }
  return out;
}

Result<std::map<std::string, uint64_t>> read_proc_cgroups(const std::string& path) {
  auto t = fs::read_file(path);
  KREPRO_TRY(t);
  std::map<std::string, uint64_t> out;
  for (const auto& line : fs::split(*t, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = fs::split(line, '\t');
    if (f.size() < 3) f = fs::split(line, ' ');
    if (f.size() < 3) continue;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), v);
    if (ec == std::errc()) out[f[0]] = v;
  }
  return out;
}

RemoveTreeResult remove_cgroup_tree(const std::string& dir, bool kill_tasks) {
  RemoveTreeResult res;
  auto names = fs::list_dir(dir);
  if (!names) {
    if (names.error().err() != ENOENT) res.errors.push_back(names.error());
    return res;
  }
  for (const auto& n : *names) {
    std::string child = fs::join(dir, n);
    if (!fs::is_dir(child)) continue;
    auto sub = remove_cgroup_tree(child, kill_tasks);
    res.removed += sub.removed;
    for (auto& e : sub.errors) res.errors.push_back(std::move(e));
  }
  Cgroup cg = Cgroup::adopt(dir, CgroupVersion::kV1);
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (kill_tasks) {
      if (auto p = cg.pids()) {
        for (pid_t pid : *p) ::kill(pid, SIGKILL);
      }
    }
    auto r = cg.remove();
    if (r) {
      ++res.removed;
      return res;
    }
    // EBUSY while killed tasks exit; anything else is final.
    if (r.error().err() != EBUSY || !kill_tasks || attempt == 49) {
      res.errors.push_back(r.error());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  cg.release();
  return res;
}

}  // namespace krepro::kernel
