#include "harness/util/histogram.h"

#include <algorithm>
#include <cmath>

namespace krepro {

uint64_t Histogram::bucket_low(size_t i) {
  if (i < 2 * kSub) return i;
  size_t j = i - 2 * kSub;
  int e = static_cast<int>(j / kSub) + kSubBits + 1;
  uint64_t sub = j % kSub;
  return (uint64_t{1} << e) + (sub << (e - kSubBits));
}

uint64_t Histogram::bucket_width(size_t i) {
  if (i < 2 * kSub) return 1;
  int e = static_cast<int>((i - 2 * kSub) / kSub) + kSubBits + 1;
  return uint64_t{1} << (e - kSubBits);
}

void Histogram::merge(const Histogram& o) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  sum_sq_ += o.sum_sq_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = sum_ = 0;
  sum_sq_ = 0;
  min_ = std::numeric_limits<uint64_t>::max();
  max_ = 0;
}

double Histogram::stddev() const {
  if (count_ < 2) return 0.0;
  double m = mean();
  double var = sum_sq_ / static_cast<double>(count_) - m * m;
  // Sample variance, as fio reports it.
  var *= static_cast<double>(count_) / static_cast<double>(count_ - 1);
  return var > 0 ? std::sqrt(var) : 0.0;
}

uint64_t Histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least ceil(q*N) values <= it.
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      uint64_t mid = bucket_low(i) + bucket_width(i) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace krepro
