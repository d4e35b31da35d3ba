#include "harness/util/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace krepro {
namespace {

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.quantile(0.5), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(Histogram, SmallValuesExact) {
  Histogram h;
  for (uint64_t v = 0; v < 256; ++v) h.record(v);
  EXPECT_EQ(h.quantile(0.0), 0u);
  EXPECT_EQ(h.quantile(1.0), 255u);
  EXPECT_EQ(h.quantile(0.5), 127u);
}

TEST(Histogram, BucketsCoverValuesContiguously) {
  for (size_t i = 1; i < Histogram::kBuckets; ++i) {
    ASSERT_EQ(Histogram::bucket_low(i),
              Histogram::bucket_low(i - 1) + Histogram::bucket_width(i - 1))
        << "bucket " << i;
  }
  for (uint64_t v : {256ull, 257ull, 1000ull, 123456789ull, 1ull << 40}) {
    size_t i = Histogram::index_of(v);
    EXPECT_LE(Histogram::bucket_low(i), v);
    EXPECT_LT(v, Histogram::bucket_low(i) + Histogram::bucket_width(i));
  }
}

// Quantiles of a log-normal latency-like distribution agree with the exact
// order statistics within 1 %.
TEST(Histogram, QuantilesWithinOnePercent) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(12.0, 1.5);  // ~160 us median
  std::vector<uint64_t> vals;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng));
    vals.push_back(v);
    h.record(v);
  }
  std::sort(vals.begin(), vals.end());
  for (double q : {0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999}) {
    auto rank = static_cast<size_t>(std::ceil(q * vals.size()));
    double exact = static_cast<double>(vals[rank - 1]);
    double got = static_cast<double>(h.quantile(q));
    EXPECT_NEAR(got, exact, exact * 0.01) << "q=" << q;
  }
  EXPECT_EQ(h.min(), vals.front());
  EXPECT_EQ(h.max(), vals.back());
}

TEST(Histogram, MergeEqualsRecordingAll) {
  Histogram a, b, all;
  for (uint64_t v = 1; v < 100000; v += 7) {
    (v % 2 ? a : b).record(v * 13);
    all.record(v * 13);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.counts(), all.counts());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  EXPECT_NEAR(a.stddev(), all.stddev(), 1e-6 * all.stddev());
  EXPECT_EQ(a.quantile(0.99), all.quantile(0.99));
}

TEST(Histogram, StddevMatchesSampleFormula) {
  Histogram h;
  for (uint64_t v : {2, 4, 4, 4, 5, 5, 7, 9}) h.record(v);
  // Sample stddev of that set is sqrt(32/7).
  EXPECT_NEAR(h.stddev(), std::sqrt(32.0 / 7.0), 1e-9);
  EXPECT_DOUBLE_EQ(h.mean(), 5.0);
}

TEST(Histogram, HugeValuesLandInLastBucket) {
  Histogram h;
  h.record(~0ull);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), ~0ull);
  EXPECT_EQ(h.quantile(0.5), ~0ull);  // clamped to the exact max
}

}  // namespace
}  // namespace krepro
