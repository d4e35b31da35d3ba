#include "harness/engine/params.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "harness/util/check.h"

namespace krepro::engine {

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::kBool:
      return "bool";
    case ParamType::kInt:
      return "int";
    case ParamType::kDouble:
      return "number";
    case ParamType::kDuration:
      return "duration";
    case ParamType::kSize:
      return "size";
    case ParamType::kEnum:
      return "enum";
    case ParamType::kString:
      return "string";
  }
  return "?";
}

std::string param_type_hint(ParamType t) {
  switch (t) {
    case ParamType::kDuration:
      return "duration (ms, s, m, h; e.g. 30s)";
    case ParamType::kSize:
      return "size (B, KiB, MiB, GiB; e.g. 4KiB)";
    case ParamType::kBool:
      return "bool (true/false)";
    default:
      return param_type_name(t);
  }
}

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Splits "12.5ms" into 12.5 and "ms"; false when there is no leading number.
bool split_number(const std::string& text, double* num, std::string* unit) {
  std::string t = trim(text);
  if (t.empty()) return false;
  const char* begin = t.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(begin, &end);
  if (end == begin || errno == ERANGE || !std::isfinite(v)) return false;
  // strtod accepts hex floats, "inf" and "nan": only plain decimals here.
  for (const char* p = begin; p < end; ++p) {
    if (!(std::isdigit(static_cast<unsigned char>(*p)) || *p == '.' || *p == '-' || *p == '+' ||
          *p == 'e' || *p == 'E'))
      return false;
  }
  *num = v;
  *unit = trim(std::string(end));
  return true;
}

}  // namespace

std::optional<std::string> parse_duration_ns(const std::string& text, int64_t* ns) {
  double v;
  std::string unit;
  if (!split_number(text, &v, &unit)) return "'" + text + "' is not a duration (e.g. 30s, 500ms)";
  double mult = 0;
  if (unit == "ns")
    mult = 1;
  else if (unit == "us")
    mult = 1e3;
  else if (unit == "ms")
    mult = 1e6;
  else if (unit == "s")
    mult = 1e9;
  else if (unit == "m" || unit == "min")
    mult = 60e9;
  else if (unit == "h")
    mult = 3600e9;
  else if (unit.empty())
    return "duration '" + text + "' needs a unit (ms, s, m, h)";
  else
    return "bad unit '" + unit + "' in '" + text + "'; durations take ns, us, ms, s, m, h";
  double r = v * mult;
  if (r < 0) return "duration '" + text + "' is negative";
  if (r > 1e18) return "duration '" + text + "' is absurdly long";
  *ns = static_cast<int64_t>(std::llround(r));
  return std::nullopt;
}

std::optional<std::string> parse_size_bytes(const std::string& text, int64_t* bytes) {
  double v;
  std::string unit;
  if (!split_number(text, &v, &unit)) return "'" + text + "' is not a size (e.g. 4KiB, 64MiB)";
  double mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB" || unit == "K" || unit == "k")
    mult = 1024.0;
  else if (unit == "MiB" || unit == "M")
    mult = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "G")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else
    return "bad unit '" + unit + "' in '" + text + "'; sizes take B, KiB, MiB, GiB";
  double r = v * mult;
  if (r < 0) return "size '" + text + "' is negative";
  if (r > 1e15) return "size '" + text + "' is absurdly large";
  *bytes = static_cast<int64_t>(std::llround(r));
  return std::nullopt;
}

std::string format_duration(int64_t ns) {
  if (ns % 3'600'000'000'000 == 0 && ns) return std::to_string(ns / 3'600'000'000'000) + "h";
  if (ns % 60'000'000'000 == 0 && ns) return std::to_string(ns / 60'000'000'000) + "m";
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  return std::to_string(ns) + "ns";
}

std::optional<std::string> parse_param(const ParamSpec& spec, const std::string& text,
                                       ParamValue* out) {
  std::string t = trim(text);
  double num = 0;
  switch (spec.type) {
    case ParamType::kBool:
      if (t == "true" || t == "yes" || t == "on")
        *out = true;
      else if (t == "false" || t == "no" || t == "off")
        *out = false;
      else
        return "'" + t + "' is not a bool (true/false)";
      return std::nullopt;
    case ParamType::kInt: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (ec == std::errc::result_out_of_range) return "'" + t + "' is out of range";
      if (ec != std::errc() || p != t.data() + t.size()) return "'" + t + "' is not an integer";
      num = static_cast<double>(v);
      *out = v;
      break;
    }
    case ParamType::kDouble: {
      std::string unit;
      if (!split_number(t, &num, &unit) || !unit.empty()) return "'" + t + "' is not a number";
      *out = num;
      break;
    }
    case ParamType::kDuration: {
      int64_t v;
      if (auto e = parse_duration_ns(t, &v)) return e;
      num = static_cast<double>(v);
      *out = v;
      break;
    }
    case ParamType::kSize: {
      int64_t v;
      if (auto e = parse_size_bytes(t, &v)) return e;
      num = static_cast<double>(v);
      *out = v;
      break;
    }
    case ParamType::kEnum: {
      for (const auto& c : spec.choices) {
        if (c == t) {
          *out = t;
          return std::nullopt;
        }
      }
      std::string all;
      for (const auto& c : spec.choices) all += (all.empty() ? "" : ", ") + c;
      return "'" + t + "' is not one of: " + all;
    }
    case ParamType::kString:
      if (t.size() > 4096) return "string too long";
      *out = t;
      return std::nullopt;
  }
  if (spec.max > spec.min && (num < spec.min || num > spec.max)) {
    auto fmt = [&](double v) {
      if (spec.type == ParamType::kDuration) return format_duration(static_cast<int64_t>(v));
      if (spec.type == ParamType::kSize) return std::to_string(static_cast<int64_t>(v)) + "B";
      std::string s = std::to_string(v);
      if (spec.type == ParamType::kInt) s = std::to_string(static_cast<int64_t>(v));
      return s;
    };
    return "'" + t + "' is out of range [" + fmt(spec.min) + ", " + fmt(spec.max) + "]";
  }
  return std::nullopt;
}

bool Params::get_bool(const std::string& n) const {
  auto it = values_.find(n);
  KREPRO_CHECK_MSG(it != values_.end(), "param " + n);
  return std::get<bool>(it->second);
}
int64_t Params::get_int(const std::string& n) const {
  auto it = values_.find(n);
  KREPRO_CHECK_MSG(it != values_.end(), "param " + n);
  return std::get<int64_t>(it->second);
}
double Params::get_double(const std::string& n) const {
  auto it = values_.find(n);
  KREPRO_CHECK_MSG(it != values_.end(), "param " + n);
  if (auto* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
  return std::get<double>(it->second);
}
const std::string& Params::get_string(const std::string& n) const {
  auto it = values_.find(n);
  KREPRO_CHECK_MSG(it != values_.end(), "param " + n);
  return std::get<std::string>(it->second);
}

}  // namespace krepro::engine
