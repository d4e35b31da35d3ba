#include "harness/engine/params.h"

#include <gtest/gtest.h>

namespace krepro::engine {
namespace {

TEST(Units, Durations) {
  int64_t ns = 0;
  EXPECT_FALSE(parse_duration_ns("90s", &ns));
  EXPECT_EQ(ns, 90'000'000'000);
  EXPECT_FALSE(parse_duration_ns("1.5m", &ns));
  EXPECT_EQ(ns, 90'000'000'000);
  EXPECT_FALSE(parse_duration_ns("250ms", &ns));
  EXPECT_EQ(ns, 250'000'000);
  EXPECT_FALSE(parse_duration_ns("2h", &ns));
  EXPECT_EQ(ns, 7'200'000'000'000);
  auto no_unit = parse_duration_ns("90", &ns);
  ASSERT_TRUE(no_unit);
  EXPECT_NE(no_unit->find("needs a unit"), std::string::npos);
  auto bad = parse_duration_ns("5q", &ns);
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->find("bad unit 'q'"), std::string::npos);
  EXPECT_TRUE(parse_duration_ns("-5s", &ns));
  EXPECT_TRUE(parse_duration_ns("1e30h", &ns));
  EXPECT_TRUE(parse_duration_ns("inf s", &ns));
  EXPECT_TRUE(parse_duration_ns("nan", &ns));
  EXPECT_TRUE(parse_duration_ns("0x10s", &ns));
  EXPECT_TRUE(parse_duration_ns("", &ns));
}

TEST(Units, Sizes) {
  int64_t b = 0;
  EXPECT_FALSE(parse_size_bytes("4KiB", &b));
  EXPECT_EQ(b, 4096);
  EXPECT_FALSE(parse_size_bytes("64 MiB", &b));
  EXPECT_EQ(b, 64 << 20);
  EXPECT_FALSE(parse_size_bytes("512", &b));
  EXPECT_EQ(b, 512);
  EXPECT_FALSE(parse_size_bytes("1GiB", &b));
  EXPECT_EQ(b, int64_t{1} << 30);
  EXPECT_TRUE(parse_size_bytes("4 parsecs", &b));
  EXPECT_TRUE(parse_size_bytes("-1KiB", &b));
}

TEST(ParseParam, TypesAndRanges) {
  ParamSpec count{"count", ParamType::kInt, "0", 0, 1000, "n"};
  ParamValue v;
  EXPECT_FALSE(parse_param(count, "12", &v));
  EXPECT_EQ(std::get<int64_t>(v), 12);
  auto neg = parse_param(count, "-3", &v);
  ASSERT_TRUE(neg);
  EXPECT_NE(neg->find("out of range [0, 1000]"), std::string::npos);
  EXPECT_TRUE(parse_param(count, "1001", &v));
  EXPECT_TRUE(parse_param(count, "12abc", &v));
  EXPECT_TRUE(parse_param(count, "99999999999999999999999", &v));
  ParamSpec on{"kmem", ParamType::kBool, "true", 0, 0, ""};
  EXPECT_FALSE(parse_param(on, "false", &v));
  EXPECT_FALSE(std::get<bool>(v));
  EXPECT_TRUE(parse_param(on, "maybe", &v));
  ParamSpec e{"mode", ParamType::kEnum, "a", 0, 0, "", {"a", "b"}};
  auto bad = parse_param(e, "c", &v);
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->find("not one of: a, b"), std::string::npos);
  ParamSpec d{"wait", ParamType::kDuration, "1s", 1e6, 60e9, ""};
  auto far = parse_param(d, "2m", &v);
  ASSERT_TRUE(far);
  EXPECT_NE(far->find("[1ms, 1m]"), std::string::npos);
}

TEST(FormatDuration, RoundTrips) {
  EXPECT_EQ(format_duration(90'000'000'000), "90s");
  EXPECT_EQ(format_duration(120'000'000'000), "2m");
  EXPECT_EQ(format_duration(5'000'000), "5ms");
}

}  // namespace
}  // namespace krepro::engine
