#include "results/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace krepro::results {

Interval wilson_interval(size_t k, size_t n, double z) {
  if (n == 0) return {0, 1};
  double nn = static_cast<double>(n), p = static_cast<double>(k) / nn, z2 = z * z;
  double denom = 1 + z2 / nn;
  double centre = (p + z2 / (2 * nn)) / denom;
  double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

namespace {
// Number of arrangements of n1 "a" among n1+n2 with U_a == u, for every u:
// the classic recurrence f(n1, n2, u) = f(n1-1, n2, u-n2) + f(n1, n2-1, u).
std::vector<double> exact_u_counts(size_t n1, size_t n2) {
  const size_t umax = n1 * n2;
  // f[i][j] is a vector over u; fill by increasing i+j.
  std::vector<std::vector<std::vector<double>>> f(n1 + 1, std::vector<std::vector<double>>(n2 + 1));
  for (size_t i = 0; i <= n1; ++i)
    for (size_t j = 0; j <= n2; ++j) {
      f[i][j].assign(i * j + 1, 0);
      if (i == 0 || j == 0) {
        f[i][j][0] = 1;
        continue;
      }
      // Largest element is an "a" (beats all j b's) or a "b".
      for (size_t u = 0; u <= i * j; ++u) {
        double v = 0;
        if (u >= j && u - j < f[i - 1][j].size()) v += f[i - 1][j][u - j];
        if (u < f[i][j - 1].size()) v += f[i][j - 1][u];
        f[i][j][u] = v;
      }
    }
  (void)umax;
  return f[n1][n2];
}
}  // namespace

MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  MannWhitney r;
  r.n1 = a.size();
  r.n2 = b.size();
  if (a.empty() || b.empty()) return r;
  // Midranks over the pooled sample.
  struct V {
    double x;
    bool first;
  };
  std::vector<V> all;
  all.reserve(a.size() + b.size());
  for (double x : a) all.push_back({x, true});
  for (double x : b) all.push_back({x, false});
  std::sort(all.begin(), all.end(), [](const V& l, const V& r) { return l.x < r.x; });
  const double N = static_cast<double>(all.size());
  double rank_sum_a = 0, tie_term = 0;
  bool ties = false;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].x == all[i].x) ++j;
    double t = static_cast<double>(j - i);
    double midrank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k)
      if (all[k].first) rank_sum_a += midrank;
    if (t > 1) {
      ties = true;
      tie_term += t * t * t - t;
    }
    i = j;
  }
  const double n1 = static_cast<double>(r.n1), n2 = static_cast<double>(r.n2);
  r.u1 = rank_sum_a - n1 * (n1 + 1) / 2;
  r.u2 = n1 * n2 - r.u1;
  r.u = std::min(r.u1, r.u2);
  if (!ties && r.n1 + r.n2 <= 20) {
    auto counts = exact_u_counts(r.n1, r.n2);
    double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    auto at_most = [&](double x) {  // P(U <= x) under H0
      double n = 0;
      for (size_t u = 0; u < counts.size() && static_cast<double>(u) <= x + 1e-9; ++u)
        n += counts[u];
      return n / total;
    };
    r.p = std::min(1.0, 2 * at_most(r.u));
    // U1 counts pairs a > b: small U1 means b is larger.
    r.p_b_greater = std::min(1.0, at_most(r.u1));
    r.exact = true;
    return r;
  }
  const double mean = n1 * n2 / 2;
  const double var = n1 * n2 / 12 * ((N + 1) - tie_term / (N * (N - 1)));
  if (var <= 0) return r;  // all values equal: no evidence of a shift
  double d = std::fabs(r.u1 - mean);
  r.z = std::max(0.0, d - 0.5) / std::sqrt(var);
  r.p = std::min(1.0, std::erfc(r.z / std::sqrt(2.0)));
  const double z_b = (mean - r.u1 - 0.5) / std::sqrt(var);  // continuity-corrected
  r.p_b_greater = std::min(1.0, 0.5 * std::erfc(z_b / std::sqrt(2.0)));
  return r;
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const size_t m = p.size();
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  std::vector<double> adj(m);
  double running = 0;
  for (size_t i = 0; i < m; ++i) {
    double v = std::min(1.0, static_cast<double>(m - i) * p[order[i]]);
    running = std::max(running, v);
    adj[order[i]] = running;
  }
  return adj;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace krepro::results
