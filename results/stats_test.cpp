#include "results/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace krepro::results {
namespace {

TEST(Wilson, KnownValues) {
  // 5/10: textbook Wilson 95 % interval [0.2366, 0.7634].
  auto ci = wilson_interval(5, 10);
  EXPECT_NEAR(ci.lo, 0.2366, 1e-4);
  EXPECT_NEAR(ci.hi, 0.7634, 1e-4);
  // 0/10: [0, 0.2775].
  ci = wilson_interval(0, 10);
  EXPECT_NEAR(ci.lo, 0.0, 1e-12);
  EXPECT_NEAR(ci.hi, 0.2775, 1e-4);
  ci = wilson_interval(10, 10);
  EXPECT_NEAR(ci.lo, 0.7225, 1e-4);
  EXPECT_NEAR(ci.hi, 1.0, 1e-12);
  ci = wilson_interval(0, 0);
  EXPECT_EQ(ci.lo, 0);
  EXPECT_EQ(ci.hi, 1);
}

TEST(MannWhitney, ExactSmallSample) {
  // A = {1,3,5}, B = {2,4,6,8}: U_A = 0+1+2 = 3, U_B = 9. P(U <= 3) under H0
  // = (1+1+2+3)/C(7,3) = 7/35, two-sided p = 0.4.
  auto r = mann_whitney_u({1, 3, 5}, {2, 4, 6, 8});
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.u1, 3);
  EXPECT_DOUBLE_EQ(r.u2, 9);
  EXPECT_DOUBLE_EQ(r.u, 3);
  EXPECT_NEAR(r.p, 0.4, 1e-12);
  // Complete separation, n = 4 + 4: p = 2/C(8,4) = 2/70.
  r = mann_whitney_u({1, 2, 3, 4}, {5, 6, 7, 8});
  EXPECT_DOUBLE_EQ(r.u, 0);
  EXPECT_NEAR(r.p, 2.0 / 70, 1e-12);
}

TEST(MannWhitney, OneSidedFollowsTheDirection) {
  // B above A, complete separation 5 v 5: one-sided p = 1/C(10,5) = 1/252.
  auto up = mann_whitney_u({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10});
  EXPECT_NEAR(up.p_b_greater, 1.0 / 252, 1e-12);
  EXPECT_NEAR(up.p, 2.0 / 252, 1e-12);
  // B below A: the one-sided test for "B larger" finds nothing.
  auto down = mann_whitney_u({6, 7, 8, 9, 10}, {1, 2, 3, 4, 5});
  EXPECT_NEAR(down.p_b_greater, 1.0, 1e-12);
  // Normal approximation (n > 20) keeps the direction too.
  std::vector<double> a, b;
  for (int i = 0; i < 30; ++i) a.push_back(i), b.push_back(i + 10.5);
  auto big = mann_whitney_u(a, b);
  EXPECT_FALSE(big.exact);
  EXPECT_LT(big.p_b_greater, 0.01);
  EXPECT_NEAR(big.p_b_greater, big.p / 2, 1e-3);
  EXPECT_GT(mann_whitney_u(b, a).p_b_greater, 0.99);
}

TEST(Holm, StepDownAdjustment) {
  // Sorted p 0.01, 0.02, 0.03, 0.5 with m = 4: 0.04, max(0.04, 0.06) = 0.06,
  // max(0.06, 0.06) = 0.06, max(0.06, 0.5) = 0.5 — back in input order.
  auto adj = holm_adjust({0.03, 0.5, 0.01, 0.02});
  ASSERT_EQ(adj.size(), 4u);
  EXPECT_NEAR(adj[0], 0.06, 1e-12);
  EXPECT_NEAR(adj[1], 0.5, 1e-12);
  EXPECT_NEAR(adj[2], 0.04, 1e-12);
  EXPECT_NEAR(adj[3], 0.06, 1e-12);
  EXPECT_NEAR(holm_adjust({0.4, 0.9})[1], 0.9, 1e-12);  // capped at 1, monotone
  EXPECT_TRUE(holm_adjust({}).empty());
}

TEST(MannWhitney, NormalApproximationWithTies) {
  // A = {1,1,2,2}, B = {2,2,3,3}. Midranks: 1 -> 1.5, 2 -> 4.5, 3 -> 7.5.
  // R_A = 12, U_A = 12 - 10 = 2, U_B = 14. Ties t = 2, 4, 2:
  // sum(t^3 - t) = 6 + 60 + 6 = 72; var = 16/12 * (9 - 72/56) = 10.285714;
  // z = (|2 - 8| - 0.5) / sqrt(var) = 1.71493.
  auto r = mann_whitney_u({1, 1, 2, 2}, {2, 2, 3, 3});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u1, 2);
  EXPECT_DOUBLE_EQ(r.u, 2);
  EXPECT_NEAR(r.z, 1.71493, 1e-4);
  EXPECT_NEAR(r.p, std::erfc(1.71493 / std::sqrt(2.0)), 1e-4);
  EXPECT_NEAR(r.p, 0.0864, 1e-3);
}

TEST(MannWhitney, IdenticalAndEmptySamples) {
  auto r = mann_whitney_u({5, 5, 5}, {5, 5, 5});
  EXPECT_DOUBLE_EQ(r.p, 1);
  r = mann_whitney_u({}, {1});
  EXPECT_DOUBLE_EQ(r.p, 1);
  std::vector<double> a, b;
  for (int i = 0; i < 50; ++i) a.push_back(i), b.push_back(i);
  EXPECT_GT(mann_whitney_u(a, b).p, 0.9);
}

TEST(MannWhitney, LargeShiftIsSignificant) {
  std::vector<double> a, b;
  for (int i = 0; i < 40; ++i) {
    a.push_back(100 + (i * 37) % 20);
    b.push_back(150 + (i * 53) % 20);
  }
  auto r = mann_whitney_u(a, b);
  EXPECT_DOUBLE_EQ(r.u1, 0);
  EXPECT_LT(r.p, 1e-10);
}

TEST(Median, OddEven) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 2, 3}), 2.5);
  EXPECT_EQ(median({}), 0);
}

}  // namespace
}  // namespace krepro::results
