// npa::control_channel (concepts/control_channel.hpp), the failing way.
//
// case 0 conforming: compiles
// case 1 no_submit: control_channel && c.submit(r)
// case 2 submit_returns_bool: control_channel && c.submit(r)
// case 3 no_submit_batch: control_channel && c.submit_batch(batch)
// case 4 batch_of_one_request: control_channel && c.submit_batch(batch)
#include <npa/concepts/control_channel.hpp>

#include <span>

#ifndef CASE
#define CASE 0
#endif

struct channel {
#if CASE == 2
    bool submit(const npa::control_request&) { return true; }
#elif CASE != 1
    npa::status submit(const npa::control_request&) { return {}; }
#endif
#if CASE == 4
    // Takes one request where a batch is required: replay at switch time needs the
    // all-or-nothing batch.
    npa::status submit_batch(const npa::control_request&) { return {}; }
#elif CASE != 3
    npa::status submit_batch(std::span<const npa::control_request>) { return {}; }
#endif
};

static_assert(npa::control_channel<channel>);
