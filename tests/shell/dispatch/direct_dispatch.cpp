// The shell's dispatch as compiled: a shell over one plugin type, whatever its number of
// paths, calls the plugin's tx_burst directly (no switch over a type index, no indirect
// call). check_direct_dispatch.cmake compiles this file to assembly and reads the shell's
// plugin_tx: a direct call into the plugin (opaque_tx), no indirect jump or call, and no
// compare. With TYPES=2 the same shell lists two plugin types: the check then expects the
// compare of the switch, which shows that it can fail.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/shell.hpp>

#include <cstdint>
#include <span>

#ifndef TYPES
#define TYPES 1
#endif

struct dispatch_env {
    using pool_type = npa::fixed_pool<>;
    static std::uint64_t now_ns() noexcept { return 0; }
};
struct dispatch_dev {};

// Defined elsewhere, so that the compiler keeps the call visible.
extern "C" std::uint16_t opaque_tx(void* self, std::uint16_t q, std::uint32_t n) noexcept;

template <int Tag>
struct tagged {
    template <class Api>
    class plugin {
    public:
        static constexpr const char* name = "tagged";
        using device_type = dispatch_dev;
        using buffer_type = typename Api::buffer_type;
        npa::status attach(Api&, dispatch_dev&, const npa::queue_config&) { return {}; }
        void detach() noexcept {}
        std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept {
            return opaque_tx(this, static_cast<std::uint16_t>(q + Tag),
                             static_cast<std::uint32_t>(b.size()));
        }
        std::uint16_t rx_burst(std::uint16_t, std::span<buffer_type>) noexcept { return 0; }
        std::uint32_t tx_reap(std::uint16_t) noexcept { return 0; }
        std::uint32_t tx_in_flight(std::uint16_t) const noexcept { return 0; }
        void irq_arm(std::uint16_t) noexcept {}
        void irq_disarm(std::uint16_t) noexcept {}
        npa::queue_stats stats(std::uint16_t) const noexcept { return {}; }
        npa::capabilities capabilities() const noexcept { return {}; }
    };
};

#if TYPES == 1
using dispatch_shell = npa::shell<dispatch_env, tagged<0>::plugin>;
#else
using dispatch_shell = npa::shell<dispatch_env, tagged<0>::plugin, tagged<1>::plugin>;
#endif

extern "C" std::uint16_t npa_direct_send(dispatch_shell& s,
                                         std::span<npa::buffer_ref> b) noexcept {
    return s.tx_burst(0, b);
}
