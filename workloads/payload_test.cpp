#include "workloads/payload.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace krepro::workloads {
namespace {

class PayloadDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/krepro-payload-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(PayloadDir, WriteCreatesFileOfSizeAndRemoveDeletesIt) {
  PayloadSpec s;
  s.kind = PayloadKind::kWrite;
  s.size_kib = 10;
  std::string p = dir_ + "/job-1";
  ASSERT_EQ(run_payload(s, p.c_str()), 0);
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 10 * 1024);
  remove_payload_files(s, p);
  EXPECT_NE(::stat(p.c_str(), &st), 0);
}

TEST_F(PayloadDir, FilesCreatesManyAndRemoveDeletesAll) {
  PayloadSpec s;
  s.kind = PayloadKind::kFiles;
  s.files = 25;
  std::string p = dir_ + "/job-2";
  ASSERT_EQ(run_payload(s, p.c_str()), 0);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 25);
  remove_payload_files(s, p);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 0);
}

TEST_F(PayloadDir, WriteIntoMissingDirFailsWithErrnoCode) {
  PayloadSpec s;
  s.kind = PayloadKind::kWrite;
  std::string p = dir_ + "/missing/job";
  EXPECT_EQ(run_payload(s, p.c_str()), ENOENT);
}

TEST(Payload, SocketsOpenInThisNamespace) {
  PayloadSpec s;
  s.kind = PayloadKind::kSockets;
  s.sockets = 6;
  EXPECT_EQ(run_payload(s, "/unused"), 0);
}

TEST(Payload, ParseKinds) {
  PayloadKind k;
  EXPECT_TRUE(parse_payload_kind("files", &k));
  EXPECT_EQ(k, PayloadKind::kFiles);
  EXPECT_STREQ(payload_kind_name(k), "files");
  EXPECT_TRUE(parse_payload_kind("pmtu", &k));
  EXPECT_STREQ(payload_kind_name(k), "pmtu");
  EXPECT_FALSE(parse_payload_kind("bogus", &k));
}

// The pmtu payload really sends: in a namespace of its own with no route
// (lo only) its connect() fails, so the job fails. (It once ran nothing and
// exited 0, so netdev-refcount-leak made no route exceptions.) Needs
// CAP_SYS_ADMIN for the namespace; the child never touches the host's.
TEST(Payload, PmtuRunsAndFailsWithoutARoute) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) ::_exit(200);
    PayloadSpec s;
    s.kind = PayloadKind::kPmtu;
    s.pmtu_dst = htonl(0x0ac70001);  // 10.199.0.1: no route here
    s.pmtu_packets = 1;
    ::_exit(run_payload(s, "/unused"));
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_NE(WEXITSTATUS(st), 200) << "unshare(CLONE_NEWNET) failed";
  EXPECT_NE(WEXITSTATUS(st), 0) << "the pmtu payload did nothing";
}

}  // namespace
}  // namespace krepro::workloads
