// The npa-linkd control protocol, spoken over a local unix stream socket.
//
// A request is one line of printable ASCII, at most max_request_line bytes:
//   status [text]
//   stats [text]
//   switch <lower-interface | next> [text]
//   ping
// The reply is one line holding one JSON object: {"ok":true, ...} or
// {"ok":false,"error":"<why>"}. With `text`, the object also carries "text", the
// human-readable rendering (npactl prints it). Malformed requests get an error reply;
// the connection and the daemon stay up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace npa::lnx::tools {

inline constexpr std::size_t max_request_line = 256;

enum class command : std::uint8_t { status, stats, switch_to, ping };

struct request {
    command cmd = command::status;
    std::string arg;   ///< switch target
    bool text = false; ///< include the human-readable rendering
};

/// Parses one request line (without its newline). On error returns false and a reason.
[[nodiscard]] bool parse_request(std::string_view line, request& out, std::string& err);

/// JSON string escaping (quotes included).
[[nodiscard]] std::string json_str(std::string_view s);
[[nodiscard]] std::string json_error(std::string_view why);

/// Minimal reading of a reply object: the top-level boolean "ok" and string values by
/// key (unescaped). Enough for npactl; not a general JSON parser.
[[nodiscard]] bool json_get_bool(std::string_view json, std::string_view key, bool& out);
[[nodiscard]] bool json_get_string(std::string_view json, std::string_view key, std::string& out);

} // namespace npa::lnx::tools
