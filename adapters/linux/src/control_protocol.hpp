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

/// Where npa-linkd listens and npactl connects unless told otherwise: a directory only
/// root can write, so no other user can put a socket of their own at that path.
inline constexpr const char* default_run_dir = "/run/npa";
inline constexpr const char* default_socket = "/run/npa/npa-linkd.sock";

/// Makes `path` free for the daemon's bind. Creates default_run_dir (0755) when the path
/// lies in it. Whatever is at the path is removed only when it is a socket, owned by this
/// process's effective user, and nothing answers on it (a stale socket of an earlier run);
/// `note` then says so. Anything else (a regular file, another user's socket, a live
/// daemon) is left alone and the reason returned. Empty on success.
[[nodiscard]] std::string prepare_socket_path(const std::string& path, std::string& note);

/// The user at the other end of a connected unix socket (SO_PEERCRED). Trusted: root or
/// this process's effective user. False with `uid` unset if the kernel does not say.
[[nodiscard]] bool peer_uid(int fd, unsigned& uid);
[[nodiscard]] bool peer_trusted(unsigned uid);

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
