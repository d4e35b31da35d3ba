// Escaping for the text formats that embed kernel text (HTML, JUnit XML).
#pragma once

#include <string>
#include <string_view>

namespace krepro::results {

// &, <, >, " and ' escaped; control characters other than \n and \t dropped
// (XML 1.0 forbids them even as references); invalid UTF-8 bytes replaced
// by U+FFFD so the file stays well-formed.
std::string xml_escape(std::string_view s);

}  // namespace krepro::results
