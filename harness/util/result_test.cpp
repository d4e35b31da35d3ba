#include "harness/util/result.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "harness/util/errno_name.h"
#include "harness/util/unique_fd.h"

namespace krepro {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(EINVAL, "value " + std::to_string(v));
  return v;
}

Result<int> twice(int v) {
  auto r = parse_positive(v);
  KREPRO_TRY_CTX(r, "twice");
  return *r * 2;
}

TEST(Result, ValueAndErrorChain) {
  auto ok = twice(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 8);
  auto bad = twice(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().err(), EINVAL);
  EXPECT_EQ(bad.error().message(), "twice: value -1: EINVAL (Invalid argument)");
}

TEST(Result, VoidResult) {
  Result<void> ok;
  EXPECT_TRUE(ok);
  Result<void> bad = make_error(ENOSPC, "mkdir /x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "mkdir /x: ENOSPC (No space left on device)");
}

TEST(ErrnoName, KnownAndUnknown) {
  EXPECT_EQ(errno_name(ENOSPC), "ENOSPC");
  EXPECT_EQ(errno_name(EBUSY), "EBUSY");
  EXPECT_EQ(errno_name(0), "OK");
  EXPECT_EQ(errno_name(4000), "E4000");
}

TEST(UniqueFd, MoveAssignmentClosesPrevious) {
  int a = ::open("/dev/null", O_RDONLY);
  int b = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  {
    UniqueFd fa(a);
    UniqueFd fb(b);
    fa = std::move(fb);
    EXPECT_EQ(fa.get(), b);
    EXPECT_FALSE(fb.valid());
    // a was released by the assignment.
    EXPECT_EQ(::fcntl(a, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
  }
  EXPECT_EQ(::fcntl(b, F_GETFD), -1);
}

}  // namespace
}  // namespace krepro
