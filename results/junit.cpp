// junit.xml: the JUnit XML that Jenkins/GitLab read. One testsuite per run,
// one testcase per bug and detector; a reproduced bug is a <failure> with the
// evidence, a harness fault an <error>, a skipped case <skipped message=>.
#include <fmt/format.h>

#include "results/formats.h"
#include "results/xml_escape.h"

namespace krepro::results {

std::string render_junit(const RunData& run) {
  const auto& s = run.summary;
  auto cases = test_cases(run);
  size_t failures = 0, errors = 0, skipped = 0;
  for (const auto& c : cases) {
    failures += c.status == CaseStatus::kFail;
    errors += c.status == CaseStatus::kError;
    skipped += c.status == CaseStatus::kSkip;
  }
  const std::string scen = xml_escape(scenario_name(s));
  const double dur = num(s, "duration_s");
  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += fmt::format(
      "<testsuites name=\"krepro\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" "
      "time=\"{:.3f}\">\n",
      cases.size(), failures, errors, skipped, dur);
  o += fmt::format(
      "  <testsuite name=\"krepro.{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" "
      "skipped=\"{}\" time=\"{:.3f}\" timestamp=\"{}\" hostname=\"{}\">\n",
      scen, cases.size(), failures, errors, skipped, dur, xml_escape(s.value("started_at", "")),
      xml_escape(kernel_release(s)));
  o += "    <properties>\n";
  auto prop = [&](const char* k, const std::string& v) {
    o += fmt::format("      <property name=\"{}\" value=\"{}\"/>\n", k, xml_escape(v));
  };
  prop("run_id", run_id_of(run));
  prop("scenario", scenario_name(s));
  prop("kernel_release", kernel_release(s));
  prop("verdict", s.value("verdict", "?"));
  if (s.contains("reason") && s["reason"].is_string()) prop("reason", s["reason"]);
  if (s.contains("host") && s["host"].contains("cgroup_mode"))
    prop("cgroup_mode", s["host"].value("cgroup_mode", ""));
  o += "    </properties>\n";
  for (const auto& c : cases) {
    o += fmt::format("    <testcase classname=\"krepro.{}.{}\" name=\"{}\" time=\"{:.3f}\"", scen,
                     c.kind, xml_escape(c.name), c.kind == "bug" ? dur : 0.0);
    std::string body;
    for (const auto& n : c.notes) body += n + "\n";
    switch (c.status) {
      case CaseStatus::kPass:
        if (body.empty()) {
          o += "/>\n";
          continue;
        }
        o += fmt::format(">\n      <system-out>{}</system-out>\n", xml_escape(body));
        break;
      case CaseStatus::kFail:
        o += fmt::format(
            ">\n      <failure message=\"{}\" type=\"reproduced\">{}{}</failure>\n",
            xml_escape(c.name + " " + c.reason), xml_escape(body),
            xml_escape(c.evidence.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)));
        break;
      case CaseStatus::kError:
        o += fmt::format(">\n      <error message=\"{}\" type=\"harness\">{}</error>\n",
                         xml_escape(c.reason), xml_escape(body));
        break;
      case CaseStatus::kSkip:
        o += fmt::format(">\n      <skipped message=\"{}\"/>\n", xml_escape(c.reason));
        break;
    }
    o += "    </testcase>\n";
  }
  o += "  </testsuite>\n</testsuites>\n";
  return o;
}

}  // namespace krepro::results
