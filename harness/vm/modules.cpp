#include "harness/vm/modules.h"

#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>

#include "harness/util/fs.h"

namespace krepro::vm {

std::string module_name(std::string_view s) {
  auto slash = s.rfind('/');
  if (slash != std::string_view::npos) s.remove_prefix(slash + 1);
  auto ko = s.find(".ko");
  if (ko != std::string_view::npos) s = s.substr(0, ko);
  std::string n(s);
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

Result<ModuleIndex> ModuleIndex::from_modules_dep(const std::string& text) {
  ModuleIndex idx;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (fs::trim(line).empty()) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos)
      return make_error(EINVAL, "modules.dep:" + std::to_string(lineno) + ": no ':'");
    ModuleInfo mi;
    mi.path = fs::trim(line.substr(0, colon));
    for (const auto& d : fs::split(line.substr(colon + 1), ' ')) {
      auto t = fs::trim(d);
      if (!t.empty()) mi.deps.push_back(module_name(t));
    }
    idx.mods_[module_name(mi.path)] = std::move(mi);
  }
  return idx;
}

namespace {
template <class T>
bool get(const std::string& b, size_t off, T* v) {
  if (off + sizeof(T) > b.size()) return false;
  std::memcpy(v, b.data() + off, sizeof(T));
  return true;
}
}  // namespace

Result<std::map<std::string, std::string>> read_modinfo(const std::string& b) {
  // ELF64 little-endian only: the guests are x86-64 (include/uapi/linux/elf.h
  // Elf64_Ehdr / Elf64_Shdr layouts).
  if (b.size() < 64 ||
      b.compare(0, 4,
                "\x7f"
                "ELF") != 0 ||
      b[4] != 2 || b[5] != 1)
    return make_error(EINVAL, "not an ELF64 little-endian object");
  uint64_t shoff = 0;
  uint16_t shentsize = 0, shnum = 0, shstrndx = 0;
  get(b, 0x28, &shoff);
  get(b, 0x3a, &shentsize);
  get(b, 0x3c, &shnum);
  get(b, 0x3e, &shstrndx);
  if (shentsize < 64 || shstrndx >= shnum || shoff + uint64_t{shnum} * shentsize > b.size())
    return make_error(EINVAL, "bad section header table");
  auto sh = [&](uint16_t i, size_t field, auto* v) {
    return get(b, shoff + i * shentsize + field, v);
  };
  uint64_t stroff = 0, strsize = 0;
  sh(shstrndx, 24, &stroff);
  sh(shstrndx, 32, &strsize);
  if (stroff + strsize > b.size()) return make_error(EINVAL, "bad .shstrtab");
  for (uint16_t i = 0; i < shnum; ++i) {
    uint32_t name = 0;
    uint64_t off = 0, size = 0;
    sh(i, 0, &name);
    sh(i, 24, &off);
    sh(i, 32, &size);
    if (name >= strsize) continue;
    if (std::strcmp(b.c_str() + stroff + name, ".modinfo") != 0) continue;
    if (off + size > b.size()) return make_error(EINVAL, "bad .modinfo bounds");
    std::map<std::string, std::string> kv;
    std::string_view sec(b.data() + off, size);
    for (const auto& item : fs::split(sec, '\0')) {
      auto eq = item.find('=');
      if (eq == std::string::npos) continue;
      // Keys such as alias repeat; the first value is enough here.
      kv.emplace(item.substr(0, eq), item.substr(eq + 1));
    }
    return kv;
  }
  return make_error(ENOENT, "no .modinfo section");
}

Result<ModuleIndex> ModuleIndex::load(const std::string& dir) {
  ModuleIndex idx;
  auto dep = fs::read_file(dir + "/modules.dep", size_t{64} << 20);
  if (dep) {
    // depmod ran. An empty modules.dep is a kernel with everything built
    // in (modules_install of such a kernel writes it so, beside a
    // modules.builtin): no loadable module, and that is fine.
    if (!fs::trim(*dep).empty()) {
      auto r = from_modules_dep(*dep);
      if (!r) return make_error(r.error().err(), dir + "/modules.dep: " + r.error().message());
      idx = std::move(*r);
    }
  } else {
    std::error_code ec;
    namespace stdfs = std::filesystem;
    stdfs::recursive_directory_iterator it(dir + "/kernel", ec), end;
    if (ec) return make_error(ec.value(), "list " + dir + "/kernel");
    for (; it != end; it.increment(ec)) {
      const auto& p = it->path();
      if (!it->is_regular_file() || p.extension() != ".ko") continue;  // .ko.xz: needs depmod
      auto bytes = fs::read_file(p.string(), size_t{256} << 20);
      if (!bytes) continue;
      auto mi = read_modinfo(*bytes);
      if (!mi) continue;
      ModuleInfo info;
      info.path = stdfs::relative(p, dir).string();
      if (auto d = mi->find("depends"); d != mi->end())
        for (const auto& n : fs::split(d->second, ',')) info.deps.push_back(module_name(n));
      std::string name = mi->count("name") ? module_name(mi->at("name")) : module_name(info.path);
      idx.mods_[name] = std::move(info);
    }
    if (idx.mods_.empty()) return make_error(ENOENT, dir + ": no modules.dep and no .ko files");
  }
  if (auto b = fs::read_file(dir + "/modules.builtin", size_t{16} << 20)) idx.add_builtin(*b);
  return idx;
}

void ModuleIndex::add_builtin(const std::string& text) {
  for (const auto& l : fs::split(text, '\n')) {
    auto t = fs::trim(l);
    if (!t.empty()) builtin_.insert(module_name(t));
  }
}

Result<std::vector<std::string>> ModuleIndex::resolve(const std::vector<std::string>& names,
                                                      std::vector<std::string>* missing) const {
  std::vector<std::string> order;
  std::set<std::string> done, visiting;
  std::vector<std::string> miss;
  std::function<Result<void>(const std::string&, const std::string&)> visit =
      [&](const std::string& n, const std::string& chain) -> Result<void> {
    if (done.count(n)) return {};
    if (visiting.count(n))
      return make_error(ELOOP, "module dependency cycle: " + chain + " -> " + n);
    auto it = mods_.find(n);
    if (it == mods_.end()) {
      if (!builtin_.count(n)) miss.push_back(n);
      done.insert(n);
      return {};
    }
    visiting.insert(n);
    for (const auto& d : it->second.deps)
      KREPRO_TRY(visit(d, chain.empty() ? n : chain + " -> " + n));
    visiting.erase(n);
    done.insert(n);
    order.push_back(it->second.path);
    return {};
  };
  for (const auto& n : names) KREPRO_TRY(visit(module_name(n), ""));
  if (missing) *missing = std::move(miss);
  return order;
}

}  // namespace krepro::vm
