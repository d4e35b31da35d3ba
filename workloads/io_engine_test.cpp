#include "workloads/io_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "harness/util/unique_fd.h"

namespace krepro::workloads {
namespace {

class TempFile {
 public:
  TempFile() {
    char tmpl[] = "/tmp/krepro-io-engine-XXXXXX";
    fd_.reset(::mkstemp(tmpl));
    path_ = tmpl;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string path_;
};

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

void round_trip(IoEngine& e) {
  TempFile f;
  ASSERT_GE(f.fd(), 0);
  std::vector<char> out(8192), in(8192, 0);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i * 7 + 3);
  auto w = e.write(f.fd(), out.data(), 4096, 0);
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_EQ(*w, 4096u);
  ASSERT_TRUE(e.write_all(f.fd(), out.data() + 4096, 4096, 4096));
  ASSERT_TRUE(e.fdatasync(f.fd()));
  ASSERT_TRUE(e.fsync(f.fd()));
  struct stat st;
  ASSERT_EQ(::fstat(f.fd(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  auto r = e.read(f.fd(), in.data(), in.size(), 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, 8192u);
  EXPECT_EQ(in, out);
  // Reading at EOF gives 0 bytes, and a positional read at an offset works.
  auto eof = e.read(f.fd(), in.data(), 10, 8192);
  ASSERT_TRUE(eof);
  EXPECT_EQ(*eof, 0u);
  auto mid = e.read(f.fd(), in.data(), 1, 4097);
  ASSERT_TRUE(mid);
  EXPECT_EQ(in[0], out[4097]);
}

TEST(PsyncEngine, RoundTrip) {
  PsyncEngine e;
  EXPECT_EQ(e.engine_name(), "psync");
  round_trip(e);
}

TEST(PsyncEngine, ErrorsCarryErrno) {
  PsyncEngine e;
  char b[16] = {};
  auto w = e.write(-1, b, sizeof b, 0);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().err(), EBADF);
  auto s = e.fdatasync(-1);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().err(), EBADF);
}

TEST(UringEngine, RoundTrip) {
  auto e = UringEngine::create();
  if (!e) GTEST_SKIP() << "io_uring unavailable: " << e.error().message();
  EXPECT_EQ(e->engine_name(), "io_uring");
  round_trip(*e);
}

TEST(UringEngine, ErrorsCarryErrno) {
  auto e = UringEngine::create();
  if (!e) GTEST_SKIP() << "io_uring unavailable: " << e.error().message();
  char b[16] = {};
  auto w = e->write(-1, b, sizeof b, 0);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().err(), EBADF);
  auto s = e->fdatasync(-1);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().err(), EBADF);
}

TEST(UringEngine, MoveConstructAndAssign) {
  auto a = UringEngine::create();
  auto b = UringEngine::create();
  if (!a || !b) GTEST_SKIP() << "io_uring unavailable";
  const int fd_a = a->ring_fd();
  const int fd_b = b->ring_fd();
  ASSERT_TRUE(fd_open(fd_a));
  ASSERT_TRUE(fd_open(fd_b));

  UringEngine c(std::move(*a));
  EXPECT_FALSE(a->valid());
  EXPECT_EQ(a->ring_fd(), -1);
  EXPECT_EQ(c.ring_fd(), fd_a);

  // Move-assignment releases the ring c held (fd_a is closed) and takes b's.
  c = std::move(*b);
  EXPECT_FALSE(b->valid());
  EXPECT_EQ(c.ring_fd(), fd_b);
  EXPECT_FALSE(fd_open(fd_a));
  round_trip(c);

  // Self-move keeps the ring.
  UringEngine& self = c;
  c = std::move(self);
  EXPECT_EQ(c.ring_fd(), fd_b);
}

TEST(UringEngine, CreatedOnOneThreadUsedOnAnother) {
  // With SINGLE_ISSUER the ring belongs to its first submitter; it is created
  // disabled so that the stream thread, not the creating one, becomes it.
  auto e = UringEngine::create();
  if (!e) GTEST_SKIP() << "io_uring unavailable";
  bool ok = false;
  std::thread t([&] {
    TempFile f;
    char b[512] = {1, 2, 3};
    auto w = e->write(f.fd(), b, sizeof b, 0);
    auto s = e->fdatasync(f.fd());
    ok = w && *w == sizeof b && s;
  });
  t.join();
  EXPECT_TRUE(ok);
  if (e->setup_flags() & IORING_SETUP_SINGLE_ISSUER) {
    // Now bound to the (exited) thread: this thread is refused (EEXIST,
    // io_uring/io_uring.c io_uring_enter), which shows the flag is in force.
    TempFile f;
    auto s = e->fdatasync(f.fd());
    EXPECT_FALSE(s);
  }
}

TEST(UringEngine, PlainFlagsWork) {
  auto e = UringEngine::create(4, /*fio_flags=*/false);
  if (!e) GTEST_SKIP() << "io_uring unavailable";
  EXPECT_EQ(e->setup_flags(), 0u);
  round_trip(*e);
}

TEST(UringEngine, DestructorClosesRing) {
  int fd = -1;
  {
    auto a = UringEngine::create();
    if (!a) GTEST_SKIP() << "io_uring unavailable";
    fd = a->ring_fd();
    ASSERT_TRUE(fd_open(fd));
  }
  EXPECT_FALSE(fd_open(fd));
}

TEST(MakeEngine, AutoPicksIoUringWhenAvailable) {
  auto e = make_engine("auto");
  ASSERT_TRUE(e) << e.error().message();
  if (UringEngine::create()) {
    EXPECT_EQ((*e)->engine_name(), "io_uring");
    EXPECT_NE((*e)->reason().find("io_uring_queue_init succeeded"), std::string::npos);
  } else {
    EXPECT_EQ((*e)->engine_name(), "psync");
    EXPECT_NE((*e)->reason().find("unavailable"), std::string::npos);
  }
}

TEST(MakeEngine, AutoPicksIoUringOnThisHost) {
  // This machine runs 6.18 with kernel.io_uring_disabled = 0; when that is
  // not so, say why rather than fail.
  if (!UringEngine::create()) GTEST_SKIP() << "io_uring not usable on this host";
  auto e = make_engine("auto");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)->engine_name(), "io_uring");
}

TEST(MakeEngine, ExplicitKinds) {
  auto p = make_engine("psync");
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)->engine_name(), "psync");
  EXPECT_EQ((*p)->reason(), "requested psync");
  round_trip(**p);
  auto bad = make_engine("aio");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().err(), EINVAL);
}

}  // namespace
}  // namespace krepro::workloads
