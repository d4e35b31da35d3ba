// Log-linear latency histogram (HdrHistogram's bucket layout, written small
// because no Debian package ships a C++ HdrHistogram): every power of two is
// split into 128 linear sub-buckets, so a value's bucket is at most 1/128
// (0.78 %) wide relative to it and the reported midpoint is within 0.4 %.
//
// One histogram per thread; record() takes no lock. merge() combines them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace krepro {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = 1u << kSubBits;  // 128
  static constexpr int kMaxExp = 47;                // values up to 2^48 ns (~78 h)
  static constexpr size_t kBuckets = 2 * kSub + (kMaxExp - kSubBits) * kSub;

  Histogram() : counts_(kBuckets, 0) {}

  void record(uint64_t v) {
    ++counts_[index_of(v)];
    ++count_;
    sum_ += v;
    sum_sq_ += static_cast<double>(v) * static_cast<double>(v);
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
  }

  void merge(const Histogram& o);
  void reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  double stddev() const;
  // Value at quantile q in [0, 1] (nearest rank, as fio reports), clamped to
  // the exact min and max seen.
  uint64_t quantile(double q) const;

  static size_t index_of(uint64_t v) {
    if (v < 2 * kSub) return static_cast<size_t>(v);
    int e = 63 - __builtin_clzll(v);  // e >= kSubBits + 1
    if (e > kMaxExp) return kBuckets - 1;
    return static_cast<size_t>(2 * kSub + (e - kSubBits - 1) * kSub +
                               ((v >> (e - kSubBits)) & (kSub - 1)));
  }
  // Lowest value in bucket i and the bucket's width.
  static uint64_t bucket_low(size_t i);
  static uint64_t bucket_width(size_t i);

  const std::vector<uint64_t>& counts() const { return counts_; }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  double sum_sq_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace krepro
