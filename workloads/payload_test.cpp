#include "workloads/payload.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

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
  EXPECT_FALSE(parse_payload_kind("bogus", &k));
}

}  // namespace
}  // namespace krepro::workloads
