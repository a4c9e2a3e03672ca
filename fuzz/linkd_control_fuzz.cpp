// fuzz/linkd_control_fuzz.cpp: the npa-linkd control protocol (adapters/linux/src/
// control_protocol.cpp): request lines as the daemon reads them from its socket, and reply
// objects as npactl reads them back.
//
// Invariants: no out-of-bounds access or undefined behaviour; a refused request says why;
// an accepted one fits the line limit and, for switch, names a target; an error reply built
// from any text is read back by npactl as ok=false with the same text.
#include "fuzz_input.hpp"

#include "control_protocol.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace t = npa::lnx::tools;
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    t::request rq;
    std::string err;
    if (t::parse_request(line, rq, err)) {
        NPA_FUZZ_CHECK(line.size() <= t::max_request_line);
        NPA_FUZZ_CHECK(rq.cmd != t::command::switch_to || !rq.arg.empty());
    } else {
        NPA_FUZZ_CHECK(!err.empty());
    }
    // The same bytes as a reply (the daemon's side is not trusted by npactl either).
    bool ok = false;
    std::string s;
    (void)t::json_get_bool(line, "ok", ok);
    (void)t::json_get_string(line, "error", s);
    (void)t::json_get_string(line, "text", s);
    // Round trip: an error reply carrying these bytes reads back as they were.
    const std::string reply = t::json_error(line);
    bool rok = true;
    NPA_FUZZ_CHECK(t::json_get_bool(reply, "ok", rok) && !rok);
    std::string back;
    NPA_FUZZ_CHECK(t::json_get_string(reply, "error", back));
    NPA_FUZZ_CHECK(back == line);
    return 0;
}
