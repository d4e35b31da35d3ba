#include "harness/vm/guest_stream.h"

#include <charconv>

#include "harness/util/fs.h"
#include "harness/vm/initramfs.h"

namespace krepro::vm {

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// An exit status or rmmod status: a decimal int, else -1.
int parse_int(std::string_view s) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() ? v : -1;
}

// Guest text kept in the summary: bounded, no control characters.
std::string clean(std::string_view s, size_t max = 512) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  return fs::trim(out);
}

}  // namespace

GuestStream::Line GuestStream::feed_line(std::string_view v) {
  if (in_result_) {
    if (v == kMarkEnd) {
      in_result_ = false;
      result_complete_ = !result_overflow_;
    } else if (!result_overflow_) {
      if (result_b64_.size() + v.size() > max_result_) {
        result_overflow_ = true;
        result_b64_.clear();
        result_b64_.shrink_to_fit();
      } else {
        result_b64_ += v;
      }
    }
    return Line::kMarker;
  }
  if (starts_with(v, kMarkInit)) {
    init_started_ = true;
  } else if (starts_with(v, kMarkKernel)) {
    guest_kernel_ = clean(v.substr(kMarkKernel.size()), 256);
  } else if (starts_with(v, kMarkExit)) {
    guest_rc_ = parse_int(fs::trim(v.substr(kMarkExit.size())));
  } else if (starts_with(v, kMarkSetupFailed)) {
    if (setup_failures_.size() < kMaxSetupFailures)
      setup_failures_.push_back(clean(v.substr(kMarkSetupFailed.size())));
  } else if (starts_with(v, kMarkRmmod)) {
    auto f = fs::split(fs::trim(v.substr(kMarkRmmod.size())), ' ');
    if (f.size() == 2 && (unloaded_.size() < kMaxModules || unloaded_.count(f[0])))
      unloaded_[clean(f[0], 128)] = parse_int(f[1]);
  } else if (v == kMarkBegin) {
    in_result_ = true;
    result_b64_.clear();
    result_complete_ = false;
    result_overflow_ = false;
  } else if (v == kMarkDone) {
    done_ = true;
  } else if (!v.empty() && v.front() == '{') {
    ++events_;
    return Line::kEvent;
  } else {
    return Line::kOther;
  }
  return Line::kMarker;
}

bool base64_decode(std::string_view in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    int v = val(c);
    if (v < 0) return false;
    acc = ((acc << 6) | static_cast<uint32_t>(v)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

}  // namespace krepro::vm
