// write_formats and `krepro report`.
#include "results/formats.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>

#include "harness/util/fs.h"

namespace krepro::results {

namespace {
struct FormatFile {
  const char* format;
  const char* file;
};
constexpr FormatFile kFiles[] = {{"ktap", "results.ktap"},
                                 {"junit", "junit.xml"},
                                 {"html", "report.html"},
                                 {"prom", "krepro.prom"},
                                 {"kcidb", "kcidb.json"}};

Result<void> write_one(const RunData& run, const std::string& format) {
  for (const auto& f : kFiles) {
    if (format != f.format) continue;
    std::string text;
    if (format == "ktap")
      text = render_ktap(run);
    else if (format == "junit")
      text = render_junit(run);
    else if (format == "html")
      text = render_html(run);
    else if (format == "prom")
      text = render_prom(run);
    else
      text = render_kcidb(run).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    return write_atomic(fs::join(run.dir, f.file), text);
  }
  return make_error(EINVAL, "unknown format '" + format + "'");
}
}  // namespace

const std::vector<std::string>& known_formats() {
  static const std::vector<std::string> k = {"json", "ktap", "junit", "html", "prom", "kcidb"};
  return k;
}

Result<void> write_formats(const std::string& run_dir, const nlohmann::json& summary,
                           const std::vector<std::string>& formats) {
  for (const auto& f : formats)
    if (std::find(known_formats().begin(), known_formats().end(), f) == known_formats().end())
      return make_error(EINVAL,
                        "unknown format '" + f + "' (known: json,ktap,junit,html,prom,kcidb)");
  RunData run = run_from_summary(run_dir, summary);
  // Every format is attempted; the first failure is reported.
  std::optional<Error> first;
  for (const auto& f : formats) {
    if (f == "json") continue;
    if (auto r = write_one(run, f); !r && !first) first = r.error();
  }
  if (first) return Unexpected(*first);
  return {};
}

int report_main(const std::string& run_dir, const std::vector<std::string>& formats,
                std::ostream* err) {
  std::ostream& e = err ? *err : std::cerr;
  auto run = load_run(run_dir);
  if (!run) {
    e << "krepro report: " << run.error().message() << "\n";
    return 2;
  }
  std::vector<std::string> want = formats;
  auto add = [&](const std::string& f) {
    if (std::find(want.begin(), want.end(), f) == want.end()) want.push_back(f);
  };
  add("html");
  for (const auto& f : kFiles)
    if (fs::exists(fs::join(run_dir, f.file))) add(f.format);
  if (auto r = write_formats(run_dir, run->summary, want); !r) {
    e << "krepro report: " << r.error().message() << "\n";
    return r.error().err() == EINVAL ? 2 : 3;
  }
  for (const auto& f : kFiles)
    if (std::find(want.begin(), want.end(), f.format) != want.end())
      e << "  wrote " << fs::join(run_dir, f.file) << "\n";
  return 0;
}

}  // namespace krepro::results
