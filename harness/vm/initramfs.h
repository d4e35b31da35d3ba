// Builds the guest initramfs for `krepro vm`: the krepro binary with its
// shared libraries, busybox with its applet links, the shipped scenarios,
// the kernel modules a run needs (with dependencies, in load order) and an
// /init script. Images are cached by the hash of their (deterministic) cpio
// bytes, so a second run with the same inputs does not compress again.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness/util/result.h"
#include "harness/vm/cpio.h"

namespace krepro::vm {

// Guest paths the init script and the host runner agree on.
inline constexpr const char* kGuestKrepro = "/usr/bin/krepro";
inline constexpr const char* kGuestScenarios = "/usr/share/krepro/scenarios";
inline constexpr const char* kGuestOut = "/run/krepro-guest";
inline constexpr const char* kGuestArgs = "/etc/krepro/args";  // one argument a line
inline constexpr const char* kEventPort = "/dev/ttyS1";
// Marker lines on the event port (they never start with '{', events do).
inline constexpr std::string_view kMarkInit = "KREPRO-INIT";
inline constexpr std::string_view kMarkKernel = "KREPRO-GUEST-KERNEL ";
inline constexpr std::string_view kMarkExit = "KREPRO-EXIT ";
inline constexpr std::string_view kMarkBegin = "KREPRO-RESULT-BEGIN";
inline constexpr std::string_view kMarkEnd = "KREPRO-RESULT-END";
inline constexpr std::string_view kMarkDone = "KREPRO-DONE";
// "KREPRO-SETUP-FAILED what": a module asked for by path, or the delayed
// disk, could not be set up; the run is not what was asked for.
inline constexpr std::string_view kMarkSetupFailed = "KREPRO-SETUP-FAILED ";
// "KREPRO-RMMOD name rc": a fixture module unloaded after the run.
inline constexpr std::string_view kMarkRmmod = "KREPRO-RMMOD ";

// A module the init script loads: guest path, insmod parameters, and
// whether the run is meaningless without it (modules given by path, e.g. a
// test fixture, are; the default set is best effort). Required modules are
// unloaded again after krepro exits (a fixture releases what it holds).
struct InitModule {
  std::string path;
  std::vector<std::string> params;  // "name=value"
  bool required = false;
};

struct InitOptions {
  bool scratch_disk = false;  // mount /dev/vda (ext4) on /mnt/scratch
  int disk_delay_ms = 0;      // > 0: through dm-delay (dmsetup in the image)
};

// A module for the guest given on the command line: a name from the
// modules tree or a host path to a .ko, then insmod parameters, separated
// by blanks ("krepro_netdev_hold.ko pattern=krv* hold_ms=-1").
struct ModuleRequest {
  std::string name_or_path;
  std::vector<std::string> params;
  bool is_file() const;
};
// Parameters are restricted to name=value with characters a shell word
// and insmod take as they are (no quotes, spaces, $ or `).
Result<ModuleRequest> parse_module_request(const std::string& spec);

struct ImageSpec {
  std::string krepro_binary;  // host path, copied to kGuestKrepro
  std::string busybox = "/bin/busybox";
  std::string scenarios_dir;         // copied to kGuestScenarios ("" = none)
  std::string modules_dir;           // lib/modules/VERSION on the host ("" = none)
  std::vector<std::string> modules;  // names wanted (dependencies added)
  std::map<std::string, std::vector<std::string>> module_params;  // by module name
  // Modules from host .ko files, loaded after the tree's, required.
  std::vector<ModuleRequest> module_files;
  bool scratch_disk = false;  // mount /dev/vda (ext4) on /mnt/scratch
  int disk_delay_ms = 0;      // put dm-delay under the scratch filesystem
  // Host programs copied with their shared libraries (e.g. /usr/sbin/dmsetup).
  std::vector<std::string> tools;
  // Extra files: (host path, guest path), e.g. a test's hang script.
  std::vector<std::pair<std::string, std::string>> extra_files;
  std::string cache_dir;  // where built images are kept
};

struct Image {
  std::string path;  // gzip-compressed newc cpio
  std::string hash;  // hex FNV-1a 64 of the uncompressed archive
  bool from_cache = false;
  std::vector<std::string> modules;          // .ko paths, load order
  std::vector<std::string> missing_modules;  // asked for, not in the tree
  std::string module_version;                // VERSION of the modules dir
};

// Parses `ldd` output into the absolute paths to copy: "libx.so => /p (..)"
// and "/lib64/ld-linux-x86-64.so.2 (...)"; the vDSO has no file.
std::vector<std::string> parse_ldd(const std::string& ldd_output);

// The /init script (busybox sh). Module paths are guest paths.
std::string make_init_script(const std::vector<InitModule>& modules, const InitOptions& opt);

// Builds (or finds in the cache) the image.
Result<Image> build_image(const ImageSpec& spec);

// A small uncompressed cpio holding kGuestArgs; the kernel unpacks
// concatenated archives in order (init/initramfs.c unpack_to_rootfs), so
// per-run arguments ride on a cached image without rebuilding it.
std::string args_archive(const std::vector<std::string>& args);

// dpkg-deb -x of a linux-image .deb into the cache; returns the
// lib/modules/VERSION dir (depmod -b run when modules.dep is missing and a
// depmod exists).
Result<std::string> modules_from_deb(const std::string& deb, const std::string& cache_dir);

uint64_t fnv1a64(std::string_view data);
std::string default_cache_dir();
// Runs a shell command line, returning its stdout; fails on a non-zero exit.
Result<std::string> run_capture(const std::string& cmdline);
std::string shell_quote(const std::string& s);

}  // namespace krepro::vm
