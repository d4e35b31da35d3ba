#include <gtest/gtest.h>

#include <regex>

#include "results/formats.h"
#include "results/svg_plot.h"
#include "results/test_util.h"
#include "results/xml_escape.h"

namespace krepro::results {
namespace {

using testing::sample;

TEST(XmlEscape, EscapesMarkupAndDropsControlBytes) {
  EXPECT_EQ(xml_escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(xml_escape(std::string("a\x01"
                                   "b\n",
                                   4)),
            "ab\n");
  EXPECT_EQ(xml_escape("\xff"), "\xEF\xBF\xBD");  // invalid UTF-8
  EXPECT_EQ(xml_escape("µs"), "µs");
}

TEST(HtmlReport, SelfContainedWithTimeline) {
  for (const char* s : {"smoke", "holder", "dying", "repro", "skipped", "error"}) {
    std::string html = render_html(sample(s));
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u) << s;
    EXPECT_FALSE(std::regex_search(html, std::regex(R"((src|href)\s*=\s*["']?\s*(https?:)?//)")))
        << s;
    EXPECT_EQ(html.find("http://"), std::string::npos) << s;
    EXPECT_EQ(html.find("https://"), std::string::npos) << s;
    EXPECT_EQ(html.find("<link"), std::string::npos) << s;
    EXPECT_NE(html.find("<svg class=\"timeline\""), std::string::npos) << s;
    EXPECT_NE(html.find("</html>"), std::string::npos) << s;
  }
}

TEST(HtmlReport, HostileKernelTextIsEscaped) {
  std::string html = render_html(sample("repro"));
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; eth0"),
            std::string::npos);
  EXPECT_EQ(html.find("<hostile>"), std::string::npos);  // scenario description
  EXPECT_NE(html.find("&lt;hostile&gt; &amp; &quot;quoted&quot;"), std::string::npos);
}

TEST(HtmlReport, ShowsVerdictFindingsMarkersAndIo) {
  std::string html = render_html(sample("repro"));
  EXPECT_NE(html.find("class=\"verdict v-reproduced\""), std::string::npos);
  EXPECT_NE(html.find("netns-teardown"), std::string::npos);
  // Signature and finding markers, phase bands, the I/O panel with stalls.
  EXPECT_NE(html.find("unregister-netdevice-wait ×4"), std::string::npos);
  EXPECT_NE(html.find(">drain</text>"), std::string::npos);
  EXPECT_NE(html.find("I/O latency p99"), std::string::npos);
  EXPECT_NE(html.find("stall (duration ms)"), std::string::npos);
  EXPECT_NE(html.find("workload.kv_wal.fdatasync"), std::string::npos);
  EXPECT_NE(html.find("mkdir:ENOSPC"), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"hist\""), std::string::npos);
  // No workload: no I/O panel, and the page says so nowhere falsely.
  std::string smoke = render_html(sample("smoke"));
  EXPECT_EQ(smoke.find("I/O latency p99"), std::string::npos);
  EXPECT_NE(smoke.find("class=\"verdict v-not_reproduced\""), std::string::npos);
}

TEST(SvgPlot, ValuesMapInsideThePlot) {
  TimelineSpec spec;
  spec.t_max = 10;
  spec.panels.push_back({"x", {{"a", "#000", {{0, 0}, {10, 100}}, false}}, false});
  std::string svg = render_timeline_svg(spec);
  // Left edge x = 70, right edge x = width - 190 = 1050; bottom y = 30+170.
  EXPECT_NE(svg.find("points=\"70.0,200.0 1050.0,30.0 \""), std::string::npos) << svg;
}

TEST(SvgPlot, HistogramPutsMassWherePercentilesSay) {
  // 99 % of ops at ~1 µs, the last 1 % at ~1 ms: the tallest bar is left.
  std::vector<std::pair<double, double>> ladder = {{50, 1000}, {99, 1100}};
  std::string svg = render_histogram_svg(ladder, 900, 1e6, 100, 1e7, 400, 40);
  std::regex bar("<rect x=\"([0-9.]+)\" y=\"([0-9.]+)\"");
  double tall_x = -1, min_y = 1e9;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), bar); it != std::sregex_iterator();
       ++it) {
    double y = std::stod((*it)[2]);
    if (y < min_y) min_y = y, tall_x = std::stod((*it)[1]);
  }
  EXPECT_GE(tall_x, 0);
  EXPECT_LT(tall_x, 200);  // 1 µs is in the left half of 100 ns .. 10 ms
  EXPECT_EQ(format_ns(1.5e6), "1.5 ms");
  EXPECT_EQ(format_ns(830e3), "830 µs");
}

}  // namespace
}  // namespace krepro::results
