#include "harness/engine/scratch_fs.h"

#include <sys/mount.h>
#include <unistd.h>

#include "harness/engine/actor.h"
#include "harness/engine/journal.h"
#include "harness/util/fs.h"

namespace krepro::engine {

Result<std::unique_ptr<ScratchFs>> ScratchFs::create(RunContext& ctx, uint64_t bytes,
                                                     const std::string& mountpoint) {
  std::unique_ptr<ScratchFs> s(new ScratchFs());
  Journal& j = *ctx.journal;
  s->outer_img_ = "/var/tmp/" + ctx.prefix + "-outer.img";
  s->outer_mnt_ = "/run/krepro/" + ctx.prefix + "-outer";
  s->inner_mnt_ = mountpoint;
  std::string inner_img = s->outer_mnt_ + "/" + ctx.prefix + "-inner.img";

  // Journal each object before it exists (cleanup after SIGKILL).
  KREPRO_TRY(j.add_file(s->outer_img_));
  KREPRO_TRY(kernel::make_sparse_file(s->outer_img_, bytes + bytes / 16 + (64u << 20)));
  auto outer = kernel::LoopDevice::attach(s->outer_img_, false);
  KREPRO_TRY_CTX(outer, "scratch outer loop");
  s->outer_ = std::move(*outer);
  KREPRO_TRY(j.add_loop_device(s->outer_.path()));
  KREPRO_TRY(kernel::make_ext4(s->outer_.path()));
  KREPRO_TRY(fs::make_dirs(s->outer_mnt_));
  KREPRO_TRY(j.add_mount(s->outer_mnt_));
  if (::mount(s->outer_.path().c_str(), s->outer_mnt_.c_str(), "ext4", 0, nullptr) != 0)
    return errno_error("mount " + s->outer_.path());
  s->outer_mounted_ = true;

  KREPRO_TRY(kernel::make_sparse_file(inner_img, bytes));
  auto inner = kernel::LoopDevice::attach(inner_img, true);
  KREPRO_TRY_CTX(inner, "scratch inner loop");
  s->inner_ = std::move(*inner);
  KREPRO_TRY(j.add_loop_device(s->inner_.path()));
  KREPRO_TRY(kernel::make_ext4(s->inner_.path()));
  KREPRO_TRY(fs::make_dirs(s->inner_mnt_));
  KREPRO_TRY(j.add_mount(s->inner_mnt_));
  if (::mount(s->inner_.path().c_str(), s->inner_mnt_.c_str(), "ext4", 0, nullptr) != 0)
    return errno_error("mount " + s->inner_.path());
  s->inner_mounted_ = true;
  return s;
}

ScratchFs::~ScratchFs() {
  if (inner_mounted_) ::umount2(inner_mnt_.c_str(), MNT_DETACH);
  (void)inner_.detach();
  if (outer_mounted_) ::umount2(outer_mnt_.c_str(), MNT_DETACH);
  ::rmdir(outer_mnt_.c_str());
  (void)outer_.detach();
  if (!outer_img_.empty()) ::unlink(outer_img_.c_str());
}

}  // namespace krepro::engine
