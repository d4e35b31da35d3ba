// Parameter tables: every actor and detector parameter is declared once
// (name, type, unit, default, range, help). Validation, `krepro list` and
// `--set` all read the same table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace krepro::engine {

enum class ParamType { kBool, kInt, kDouble, kDuration, kSize, kEnum, kString };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kInt;
  std::string default_value;  // as it would be written in YAML
  double min = 0;             // range, in the type's base unit (ns for durations, bytes for sizes)
  double max = 0;             // max <= min: no range check
  std::string help;
  std::vector<std::string> choices;  // kEnum
  bool scalable = false;             // multiplied by --set scale=
};

const char* param_type_name(ParamType t);
// "duration (ms, s, m, h)" etc., for list and error messages.
std::string param_type_hint(ParamType t);

// A parsed value: bool, int64 (int, duration ns, size bytes), double, string.
using ParamValue = std::variant<bool, int64_t, double, std::string>;

// Parses text against a spec; on failure returns the reason ("bad unit 'q'
// in '5q'; durations take ms, s, m, h").
std::optional<std::string> parse_param(const ParamSpec& spec, const std::string& text,
                                       ParamValue* out);

// "90s" → 90e9 ns. Bare numbers are rejected for durations: a unit is required.
std::optional<std::string> parse_duration_ns(const std::string& text, int64_t* ns);
// "4KiB", "64 MiB", "512" (bytes).
std::optional<std::string> parse_size_bytes(const std::string& text, int64_t* bytes);
std::string format_duration(int64_t ns);

// The values an actor or detector receives after validation.
class Params {
 public:
  void set(const std::string& name, ParamValue v) { values_[name] = std::move(v); }
  bool get_bool(const std::string& n) const;
  int64_t get_int(const std::string& n) const;  // ints, durations (ns), sizes (bytes)
  double get_double(const std::string& n) const;
  const std::string& get_string(const std::string& n) const;
  bool has(const std::string& n) const { return values_.count(n) != 0; }
  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  std::map<std::string, ParamValue> values_;
};

}  // namespace krepro::engine
