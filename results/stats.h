// Statistics for `krepro compare`: Wilson score interval for a reproduction
// rate, and the Mann–Whitney U test for "B's latencies are shifted from A's".
#pragma once

#include <cstddef>
#include <vector>

namespace krepro::results {

struct Interval {
  double lo = 0, hi = 0;
};
// Wilson score interval for k successes in n trials (z = 1.96 for 95 %).
// n == 0 gives [0, 1].
Interval wilson_interval(size_t k, size_t n, double z = 1.959963984540054);

struct MannWhitney {
  size_t n1 = 0, n2 = 0;
  double u1 = 0;           // U of the first sample: pairs a > b, ties count 1/2
  double u2 = 0;           // n1*n2 - u1
  double u = 0;            // min(u1, u2), the tabulated statistic
  double z = 0;            // normal approximation (0 when exact)
  double p = 1;            // two-sided
  double p_b_greater = 1;  // one-sided: b tends to be larger than a
  bool exact = false;
};
// Two-sided test. Exact permutation distribution when there are no ties
// and n1 + n2 <= 20; otherwise the normal approximation with tie correction
// and continuity correction. Either sample empty: p = 1.
MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

double median(std::vector<double> v);

// Holm–Bonferroni step-down adjustment of a family of p-values (same order
// as given): controls the chance of any false "significant" across the
// family, e.g. the dozen operations of one comparison.
std::vector<double> holm_adjust(const std::vector<double>& p);

}  // namespace krepro::results
