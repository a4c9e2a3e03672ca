// SPDX-License-Identifier: GPL-2.0
// npa_kmod_core.cpp: the module's C++ half: npa::shell over the vmxnet3 plugin, built
// freestanding with the kernel's own code-generation flags (Kbuild).
//
// It includes npa's headers and nothing of the kernel's: what it needs from the kernel
// (memory, DMA memory, registers, time, printk, napi_schedule, skb copies) it asks the C
// half for through npa_kmod.h. The shell's environment (docs/design.md, "The kernel
// module shim"):
//   pool_type   npa::fixed_pool over dma_coherent_memory: one dma_alloc_coherent block,
//               its DMA address the pool's IOVA base; no lock of its own, the C half's
//               per-device spinlock serialises every data-path call;
//   now_ns      ktime_get_ns;
//   wake(q)     napi_schedule of the device's NAPI context;
//   log         printk, prefixed with the device's name;
//   offloads    none: frames are copied between sk_buffs and npa buffers, and no checksum
//               or VLAN state is carried with them yet.
// The C++ runtime the core needs is operator new and delete (the shell's queues, the
// plugins' slot bookkeeping, the control replay batch), defined at the end of this file
// over kvmalloc and kvfree; nothing else (no exceptions, RTTI, thread-safe statics or
// static constructors).
#include "npa_kmod.h"

#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/shell.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <utility>

namespace {

namespace v = npa::vmxnet3;

// ---- the environment --------------------------------------------------------------

/// DMA memory from dma_alloc_coherent, owned: an npa::memory_backing.
class dma_coherent_memory {
public:
    dma_coherent_memory() noexcept = default;
    dma_coherent_memory(void* host, std::size_t bytes) noexcept : host_(host) {
        npa_u64 iova = 0;
        base_ = static_cast<std::byte*>(npa_kmod_dma_alloc(host, bytes, &iova));
        size_ = base_ != nullptr ? bytes : 0;
        iova_ = iova;
    }
    dma_coherent_memory(dma_coherent_memory&& o) noexcept
        : host_(o.host_), base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)),
          iova_(o.iova_) {}
    dma_coherent_memory& operator=(dma_coherent_memory&& o) noexcept {
        if (this != &o) {
            release();
            host_ = o.host_;
            base_ = std::exchange(o.base_, nullptr);
            size_ = std::exchange(o.size_, 0);
            iova_ = o.iova_;
        }
        return *this;
    }
    dma_coherent_memory(const dma_coherent_memory&) = delete;
    dma_coherent_memory& operator=(const dma_coherent_memory&) = delete;
    ~dma_coherent_memory() { release(); }

    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] npa::iova_t iova_base() const noexcept { return iova_; }

    /// Carves `bytes` at `align` from offset `at` (advanced); an empty block when full.
    v::dma_block take(std::size_t& at, std::size_t bytes, std::size_t align) const noexcept {
        const std::size_t off = (at + align - 1) / align * align;
        if (off + bytes > size_) {
            return {};
        }
        at = off + bytes;
        return {base_ + off, iova_ + off, bytes};
    }

private:
    void release() noexcept {
        if (base_ != nullptr) {
            npa_kmod_dma_free(host_, size_, base_, iova_);
            base_ = nullptr;
        }
    }

    void* host_ = nullptr;
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    npa::iova_t iova_ = 0;
};
static_assert(npa::memory_backing<dma_coherent_memory>);

using pool_t = npa::fixed_pool<dma_coherent_memory>;

struct kernel_env {
    using pool_type = pool_t;
    /// No offloads reach the stack: frames are copied (see the file comment).
    static constexpr std::uint32_t offloads = 0;
    void* host = nullptr;

    static std::uint64_t now_ns() noexcept { return npa_kmod_now_ns(); }
    void wake(std::uint16_t q) noexcept { npa_kmod_wake(host, q); }
    void log(npa::log_level level, const char* msg) noexcept {
        npa_kmod_log(host, static_cast<int>(level), msg);
    }
};

/// The plugin types: the vmxnet3 (the emulated path, always path 0) and the igbvf (the
/// 82576 VF, path 1 when the module parameter `vf` names one).
using shell_t = npa::shell<kernel_env, npa::vmxnet3_plugin, npa::igbvf_plugin>;

/// The VF's BAR0 through ioread32 / iowrite32 (the same ordering contract).
std::uint32_t vf_read(void* ctx, std::uint32_t off) noexcept { return npa_kmod_reg_read(ctx, 0, off); }
void vf_write(void* ctx, std::uint32_t off, std::uint32_t v) noexcept { npa_kmod_reg_write(ctx, 0, off, v); }
/// Between two polls of the VF's mailbox: the PF answers from its interrupt handler.
void vf_mailbox_wait(void*) noexcept { npa_kmod_udelay(100); }

/// The vmxnet3's registers through ioread32 / iowrite32 (which order against DMA memory
/// as the window's contract asks: writel after the descriptors, readl before the answer).
void reg_write(void* ctx, v::bar b, std::uint32_t off, std::uint32_t val) noexcept {
    npa_kmod_reg_write(ctx, b == v::bar::pt ? 0 : 1, off, val);
}
std::uint32_t reg_read(void* ctx, v::bar b, std::uint32_t off) noexcept {
    return npa_kmod_reg_read(ctx, b == v::bar::pt ? 0 : 1, off);
}

/// Frames per NAPI round read from the shell at once (the budget is cut into these).
constexpr std::uint16_t rx_chunk = 32;

/// A refusal of the shell's control path as the -errno `ip link` reports (Linux's
/// numbers: this file includes no kernel header).
int to_errno(const npa::status& st) noexcept {
    switch (st.code()) {
    case npa::errc::ok: return 0;
    case npa::errc::invalid_argument: return -22;  // EINVAL
    case npa::errc::not_supported: return -95;     // EOPNOTSUPP
    case npa::errc::refused: return -1;            // EPERM
    case npa::errc::no_memory: return -12;         // ENOMEM
    case npa::errc::busy: return -16;              // EBUSY
    case npa::errc::removed: return -19;           // ENODEV
    case npa::errc::timeout: return -110;          // ETIMEDOUT
    case npa::errc::bad_state:
    case npa::errc::device_error:
    case npa::errc::reset: break;
    }
    return -5;  // EIO
}

/// The shell's own counters of a queue, for ethtool -S (npa::shell_queue_counters).
struct counter_field {
    const char* name;
    std::uint64_t npa::shell_queue_counters::*field;
};
constexpr counter_field shell_fields[] = {
    {"tx_accepted", &npa::shell_queue_counters::tx_accepted},
    {"tx_backlogged", &npa::shell_queue_counters::tx_backlogged},
    {"tx_backlog_full", &npa::shell_queue_counters::tx_backlog_full},
    {"tx_no_path", &npa::shell_queue_counters::tx_no_path},
    {"tx_requeued", &npa::shell_queue_counters::tx_requeued},
    {"tx_lost", &npa::shell_queue_counters::tx_lost},
    {"rx_delivered", &npa::shell_queue_counters::rx_delivered},
    {"switches", &npa::shell_queue_counters::flips},
};
/// A path's counters (npa::queue_stats), each name prefixed with the path's label.
struct path_field {
    const char* name;
    std::uint64_t npa::queue_stats::*field;
};
constexpr path_field path_fields[] = {
    {"rx_packets", &npa::queue_stats::rx_packets},
    {"rx_bytes", &npa::queue_stats::rx_bytes},
    {"tx_packets", &npa::queue_stats::tx_packets},
    {"tx_bytes", &npa::queue_stats::tx_bytes},
    {"rx_no_buffer", &npa::queue_stats::rx_no_buffer},
    {"rx_dropped", &npa::queue_stats::rx_dropped},
    {"tx_ring_full", &npa::queue_stats::tx_ring_full},
    {"tx_errors", &npa::queue_stats::tx_errors},
    {"bad_completion", &npa::queue_stats::bad_completion},
    {"irqs", &npa::queue_stats::irqs},
    {"resets", &npa::queue_stats::resets},
};
constexpr std::uint32_t n_shell_fields = sizeof shell_fields / sizeof shell_fields[0];
constexpr std::uint32_t n_path_fields = sizeof path_fields / sizeof path_fields[0];

/// Writes `a` then `b` into `out` (NPA_CORE_STAT_NAME bytes), cut to fit, terminated.
void stat_name(char* out, const char* a, const char* b) noexcept {
    std::size_t n = 0;
    for (const char* s : {a, b}) {
        for (; *s != '\0' && n + 1 < NPA_CORE_STAT_NAME; ++s) {
            out[n++] = *s;
        }
    }
    for (; n < NPA_CORE_STAT_NAME; ++n) {
        out[n] = '\0';
    }
}

} // namespace

// ---- the device ----------------------------------------------------------------------

struct npa_core {
    kernel_env env;
    npa_core_params params{};
    dma_coherent_memory area;  ///< shared area, queue table, rings, multicast table
    npa::result<pool_t> pool{npa::errc::no_memory, "not created"};
    v::window window;
    std::uint32_t event_vector = 1;  ///< intrConf.eventIntrIdx, as the plugin laid it out
    /// The events raise the queue's vector (INTx, MSI, one MSI-X vector): the C half's NAPI
    /// poll looks at ECR (npa_core_events) and the queue's arming owns the vector's mask.
    bool events_on_queue = false;
    npa::vmxnet3_control control{v::control_port{}};
    shell_t* shell = nullptr;
    npa::path_id path = shell_t::no_path;
    /// The paths ethtool -S lists, each with its counters' prefix.
    npa::path_id paths[2] = {shell_t::no_path, shell_t::no_path};
    const char* path_labels[2] = {nullptr, nullptr};
    // Each path id's plugin name, kept after the path is removed: the switch log still
    // names the VF in the fallback's record.
    const char* id_names[shell_t::max_paths] = {};
    std::uint32_t path_count = 0;
    npa_core_stats stats{};
    // The second path: the 82576 VF, its control path the PF's mailbox.
    dma_coherent_memory vf_area;  ///< the VF's rings
    npa::igbvf_bar vf_bar;        ///< its BAR0 (its resets and the mailbox go through it)
    npa::igbvf_window vf_window;
    npa::igbvf_control vf_control;
    npa::path_id vf_path = shell_t::no_path;
};

extern "C" {

npa_core* npa_core_create(void* host, void* fn, const npa_core_params* p) noexcept {
    auto* c = new (std::nothrow) npa_core;
    if (c == nullptr) {
        return nullptr;
    }
    c->env.host = host;
    c->params = *p;
    // 1. DMA memory for the device: shared area, queue descriptors, rings, multicast table.
    const std::size_t bytes = 4096 + v::queue_table_bytes(1) + v::QUEUE_DESC_ALIGN +
                              npa::vmxnet3_queue_bytes(p->ring_size, p->ring_size) +
                              v::RING_BA_ALIGN + npa::max_mcast_addrs * 6 + 64;
    c->area = dma_coherent_memory(fn, bytes);
    if (c->area.base() == nullptr) {
        npa_kmod_log(host, NPA_KMOD_ERR, "no DMA memory for the rings");
        npa_core_destroy(c);
        return nullptr;
    }
    std::size_t at = 0;
    const v::dma_block sh = c->area.take(at, sizeof(v::driver_shared), 4096);
    const v::dma_block tb = c->area.take(at, v::queue_table_bytes(1), v::QUEUE_DESC_ALIGN);
    const v::dma_block rb =
        c->area.take(at, npa::vmxnet3_queue_bytes(p->ring_size, p->ring_size), v::RING_BA_ALIGN);
    const v::dma_block mc = c->area.take(at, npa::max_mcast_addrs * 6, 64);
    const v::mmio io{fn, &reg_write, &reg_read};
    c->window = v::window(io, sh, tb, rb, v::device_profile{});
    // The vectors npa_kmod_main.c enabled come later (npa_core_set_irqs): it asks first
    // which type the device wants (npa_core_irq_type).
    c->control = npa::vmxnet3_control(
        v::control_port(io, reinterpret_cast<v::driver_shared*>(sh.virt), mc));
    // 2. The buffer pool, in its own DMA block.
    npa::pool_config pc;
    pc.count = p->buffers;
    c->pool.~result();
    new (&c->pool) npa::result<pool_t>(
        pool_t::create(pc, dma_coherent_memory(fn, pool_t::required_bytes(pc))));
    if (!c->pool) {
        npa_kmod_log(host, NPA_KMOD_ERR, c->pool.error().reason());
        npa_core_destroy(c);
        return nullptr;
    }
    // 3. The shell, one queue, interrupt mode (NAPI), and its one path: the vmxnet3.
    npa::shell_config cfg;
    cfg.queues.queues = 1;
    cfg.queues.tx_ring_size = p->ring_size;
    cfg.queues.rx_ring_size = p->ring_size;
    cfg.queues.mtu = p->mtu;
    cfg.mode = npa::irq_mode::interrupt;
    cfg.inline_switch = true;
    pool_t* pools[] = {&*c->pool};
    c->shell = new (std::nothrow) shell_t(c->env, pools, cfg);
    if (c->shell == nullptr || !c->shell->init_status()) {
        npa_kmod_log(host, NPA_KMOD_ERR,
                     c->shell != nullptr ? c->shell->init_status().reason() : "no memory for the shell");
        npa_core_destroy(c);
        return nullptr;
    }
    c->path = c->shell->add_path<npa::vmxnet3_plugin>(c->window, npa::control_link::to(c->control));
    if (c->path == shell_t::no_path) {
        npa_kmod_log(host, NPA_KMOD_ERR, "cannot add the vmxnet3 path");
        npa_core_destroy(c);
        return nullptr;
    }
    c->paths[c->path_count] = c->path;
    c->path_labels[c->path_count++] = "vmxnet3_";
    c->id_names[c->path] = c->shell->path_name(c->path);
    return c;
}

void npa_core_destroy(npa_core* c) noexcept {
    if (c == nullptr) {
        return;
    }
    delete c->shell;  // detaches whatever is attached
    delete c;
}

namespace {
// Function-level reset; the PF undoes the VF's filters, makes it clear to send again and
// answers the mailbox RESET with the MAC it assigned (zeroes: none, the shell's MAC is sent
// at the switch). 0 or -errno (logged). A reset later, behind the module's back, is the
// channel's own business: the shell tells it (device_reset) and it redoes the RESET.
int vf_function_reset(npa_core* c, const npa::igbvf_bar& bar, npa::mac_addr& m) noexcept {
    bar.write(npa::igbvf::reg::ctrl, npa::igbvf::ctrl_rst);
    for (int i = 0; i < 100; ++i) {
        const std::uint32_t mb = bar.read(npa::igbvf::reg::vmmb);
        if (mb != npa::igbvf::reg_removed && (mb & (npa::igbvf::mbx::rstd | npa::igbvf::mbx::rsti)) != 0) {
            break;
        }
        npa_kmod_udelay(100);
    }
    if (const npa::status st = c->vf_control.reset_when_free(m); !st) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, st.reason());
        return to_errno(st);
    }
    return 0;
}
}  // namespace

int npa_core_add_vf(npa_core* c, void* fn, npa_u8 assigned_mac[6]) noexcept {
    if (c->vf_path != shell_t::no_path) {
        return -16;  // EBUSY: one VF a device
    }
    const std::size_t bytes = std::size_t{c->params.ring_size} * 2 * npa::igbvf::desc_size;
    c->vf_area = dma_coherent_memory(fn, bytes + 128);
    if (c->vf_area.base() == nullptr) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, "no DMA memory for the VF's rings");
        return -12;  // ENOMEM
    }
    std::size_t at = 0;
    const v::dma_block r = c->vf_area.take(at, bytes, 128);
    c->vf_bar = npa::igbvf_bar(fn, &vf_read, &vf_write);
    const npa::igbvf_bar& bar = c->vf_bar;
    c->vf_window = npa::igbvf_window(bar, npa::igbvf_limits{});
    c->vf_window.set_area(0, {r.virt, r.iova, r.size});
    c->vf_control = npa::igbvf_control(npa::igbvf_mailbox_port(bar), &vf_mailbox_wait, nullptr);
    npa::mac_addr m{};
    if (const int err = vf_function_reset(c, bar, m); err != 0) {
        c->vf_area = dma_coherent_memory();
        return err;
    }
    for (int i = 0; i < 6; ++i) {
        assigned_mac[i] = m[i];
    }
    c->vf_path = c->shell->add_path<npa::igbvf_plugin>(c->vf_window, npa::control_link::to(c->vf_control));
    if (c->vf_path == shell_t::no_path) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, "cannot add the VF's path");
        c->vf_area = dma_coherent_memory();
        return -12;
    }
    c->paths[c->path_count] = c->vf_path;
    c->path_labels[c->path_count++] = "igbvf_";
    c->id_names[c->vf_path] = c->shell->path_name(c->vf_path);
    // Whatever becomes of the VF, the vmxnet3 is where the shell goes back to.
    c->shell->set_fallback(c->path);
    return 0;
}

int npa_core_vf_leaving(npa_core* c) noexcept {
    if (c->vf_path == shell_t::no_path) {
        return 0;
    }
    if (c->shell->switching()) {
        return 1;  // a switch under way (to or from the VF): finished first
    }
    if (c->shell->active_path() != c->vf_path) {
        return 0;
    }
    if (const npa::status st = c->shell->surprise_removal(); !st) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, st.reason());
        return to_errno(st);
    }
    return 1;
}

int npa_core_remove_vf(npa_core* c) noexcept {
    if (c->vf_path == shell_t::no_path) {
        return 0;
    }
    if (const npa::status st = c->shell->remove_path(c->vf_path); !st) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, st.reason());
        return to_errno(st);
    }
    c->vf_path = shell_t::no_path;
    c->path_count = 1;  // the VF is always the second
    c->vf_area = dma_coherent_memory();
    return 0;
}

static_assert(NPA_KMOD_IT_INTX == v::it::INTX && NPA_KMOD_IT_MSI == v::it::MSI &&
              NPA_KMOD_IT_MSIX == v::it::MSIX && NPA_KMOD_IT_NONE == v::it::AUTO);

npa_u32 npa_core_irq_type(npa_core* c) noexcept {
    // The revisions first, as Linux's probe selects them before GET_CONF_INTR.
    if (const char* why = v::probe(c->window); why != nullptr) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, why);
        return NPA_KMOD_IT_NONE;
    }
    return v::first_irq_type(c->window.conf_intr());
}

npa_u32 npa_core_irq_next(npa_u32 type) noexcept {
    return v::next_irq_type(type);
}

void npa_core_set_irqs(npa_core* c, npa_u32 vectors) noexcept {
    c->window.set_irq_vectors(vectors);
}

int npa_core_irq_ours(npa_core* c) noexcept {
    // A function that reads all ones raised nothing: it is gone, the line is another's.
    const std::uint32_t icr = c->window.icr();
    return icr != 0 && icr != v::removed_read ? 1 : 0;
}

int npa_core_events(npa_core* c) noexcept {
    // Only while the vmxnet3 runs: detached, its link is not asked (npa_core_link).
    return c->events_on_queue && c->shell->active_path() == c->path && c->window.ecr() != 0 ? 1
                                                                                          : 0;
}

void npa_core_mac(npa_core* c, npa_u8 mac[6]) noexcept {
    const npa::mac_addr m = c->control.mac();
    for (int i = 0; i < 6; ++i) {
        mac[i] = m[i];
    }
}

int npa_core_start(npa_core* c, const npa_u8 mac[6]) noexcept {
    if (const npa::status st = c->shell->start(c->path); !st) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, st.reason());
        return st.code() == npa::errc::no_memory ? -12 /* ENOMEM */ : -5 /* EIO */;
    }
    const npa::mac_addr m{mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]};
    if (const npa::status st = c->shell->set_mac(m); !st) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, st.reason());
        c->shell->stop();
        return -5;
    }
    const std::uint32_t mode = npa::rx_mode::unicast | npa::rx_mode::broadcast | npa::rx_mode::multicast;
    if (const npa::status st = c->shell->set_rx_mode(mode); !st) {
        npa_kmod_log(c->env.host, NPA_KMOD_ERR, st.reason());
        c->shell->stop();
        return -5;
    }
    // The plugin laid the interrupts out at attach (GET_CONF_INTR and the vectors the C
    // half enabled): with two MSI-X vectors queue 0 raises the first and the events the
    // second, which is unmasked here; with one (INTx, MSI) the events raise the queue's,
    // whose mask the shell's arming owns.
    const v::intr_layout& irq = c->shell->plugin<npa::vmxnet3_plugin>(c->path)->irq_layout();
    c->event_vector = irq.event_idx;
    c->events_on_queue = irq.shared;
    if (!c->events_on_queue) {
        c->window.imr(c->event_vector, false);
    }
    return 0;
}

void npa_core_stop(npa_core* c) noexcept {
    if (!c->events_on_queue) {
        c->window.imr(c->event_vector, true);
    }
    c->shell->stop();
}

int npa_core_xmit(npa_core* c, const void* skb, npa_u32 len) noexcept {
    npa::buffer_ref b;
    if (c->shell->alloc(0, std::span<npa::buffer_ref>(&b, 1)) != 1) {
        ++c->stats.tx_dropped;
        return 0;
    }
    if (len > b.capacity() || npa_kmod_skb_copy(skb, b.data(), len) != 0) {
        c->shell->free(0, std::span<const npa::buffer_ref>(&b, 1));
        ++c->stats.tx_dropped;
        return 0;
    }
    b.set_length(len);
    if (c->shell->tx_burst(0, std::span<npa::buffer_ref>(&b, 1)) != 1) {
        c->shell->free(0, std::span<const npa::buffer_ref>(&b, 1));
        ++c->stats.tx_dropped;
        return 0;
    }
    ++c->stats.tx_packets;
    c->stats.tx_bytes += len;
    return 1;
}

int npa_core_poll(npa_core* c, int budget, int* rearmed) noexcept {
    *rearmed = 0;
    int done = 0;
    npa::buffer_ref bufs[rx_chunk];
    while (done < budget) {
        const int want = budget - done < rx_chunk ? budget - done : rx_chunk;
        const npa::napi_result r =
            c->shell->napi_poll(0, std::span<npa::buffer_ref>(bufs, static_cast<std::size_t>(want)));
        for (std::uint16_t i = 0; i < r.received; ++i) {
            npa_kmod_rx(c->env.host, bufs[i].data(), bufs[i].length());
            ++c->stats.rx_packets;
            c->stats.rx_bytes += bufs[i].length();
        }
        c->shell->free(0, std::span<const npa::buffer_ref>(bufs, r.received));
        done += r.received;
        if (r.rearmed) {
            *rearmed = 1;
            break;
        }
        if (r.received < want) {
            break;  // short, yet not armed (a switch under way): poll again
        }
    }
    return done;
}

int npa_core_link(npa_core* c) noexcept {
    int up = 0;
    if (c->shell->active_path() != shell_t::no_path) {
        up = c->shell->plugin<npa::vmxnet3_plugin>(c->path)->link_up() ? 1 : 0;
        if (!c->events_on_queue) {
            c->window.imr(c->event_vector, false);  // it masked itself when it fired
        }
    }
    return up;
}

void npa_core_get_stats(npa_core* c, npa_core_stats* s) noexcept {
    *s = c->stats;
    const npa::queue_stats q = c->shell->queue_totals(0);
    s->rx_dropped += q.rx_dropped + q.rx_no_buffer;
    s->tx_dropped += q.tx_errors;
}

int npa_core_audit(npa_core* c) noexcept {
    return c->shell->audit().ok() ? 1 : 0;
}

int npa_core_set_mac(npa_core* c, const npa_u8 mac[6]) noexcept {
    return to_errno(c->shell->set_mac(npa::mac_addr{mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}));
}

int npa_core_set_mtu(npa_core* c, npa_u32 mtu) noexcept {
    return to_errno(c->shell->set_mtu(mtu));
}

int npa_core_vlan(npa_core* c, npa_u32 vid, int add) noexcept {
    if (vid > 0xffff) {
        return -22;  // EINVAL
    }
    const auto v16 = static_cast<std::uint16_t>(vid);
    return to_errno(add != 0 ? c->shell->add_vlan(v16) : c->shell->del_vlan(v16));
}

int npa_core_set_rx_mode(npa_core* c, npa_u32 mode, const npa_u8* mcast, npa_u32 count) noexcept {
    if (count > npa::max_mcast_addrs) {
        return -22;  // EINVAL: the C half turns a longer list into all-multicast
    }
    npa::mac_addr list[npa::max_mcast_addrs];
    for (npa_u32 i = 0; i < count; ++i) {
        for (int b = 0; b < 6; ++b) {
            list[i][b] = mcast[i * 6 + b];
        }
    }
    // The list first: a mode that narrows to it then finds it in place.
    if (const npa::status st = c->shell->set_mcast_list(std::span<const npa::mac_addr>(list, count)); !st) {
        return to_errno(st);
    }
    return to_errno(c->shell->set_rx_mode(mode));
}

npa_u32 npa_core_path_count(npa_core* c) noexcept {
    return c->path_count;
}

const char* npa_core_path_name(npa_core* c, npa_u32 i) noexcept {
    return i < c->path_count ? c->shell->path_name(c->paths[i]) : "none";
}

int npa_core_active_path(npa_core* c) noexcept {
    const npa::path_id a = c->shell->active_path();
    for (npa_u32 i = 0; i < c->path_count; ++i) {
        if (c->paths[i] == a) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

int npa_core_switch(npa_core* c, npa_u32 i) noexcept {
    if (i >= c->path_count) {
        return -22;  // EINVAL
    }
    const int active = npa_core_active_path(c);
    if (active < 0) {
        return -100;  // ENETDOWN
    }
    if (static_cast<npa_u32>(active) == i) {
        return 0;
    }
    const npa::status st = c->shell->request_switch(c->paths[i], npa::switch_reason::operator_request);
    return st ? 1 : to_errno(st);
}

int npa_core_service(npa_core* c) noexcept {
    return c->shell->service() ? 1 : 0;
}

int npa_core_switch_result(npa_core* c) noexcept {
    const npa::switch_history& h = c->shell->history();
    return h.size() == 0 ? -5 : to_errno(npa::status{h.recent(0).result, ""});
}

npa_u32 npa_core_switch_count(npa_core* c) noexcept {
    return c->shell->history().size();
}

namespace {
const char* record_path_name(const npa_core* c, npa::path_id p) noexcept {
    return p < shell_t::max_paths && c->id_names[p] != nullptr ? c->id_names[p] : c->shell->path_name(p);
}
}  // namespace

void npa_core_switch_record(npa_core* c, npa_u32 i, npa_core_switch_rec* r) noexcept {
    const npa::switch_history& h = c->shell->history();
    const npa::switch_record& s = h.recent(h.size() - 1 - i);
    r->seq = s.seq;
    r->from = record_path_name(c, s.from);
    r->to = record_path_name(c, s.to);
    r->reason = npa::to_string(s.reason);
    r->result = npa::to_string(s.result);
    r->duration_ns = s.duration_ns;
    r->held = s.held;
    r->requeued = s.requeued;
    r->tx_lost = s.tx_lost;
    r->rx_dropped = s.rx_dropped;
}

npa_u32 npa_core_stat_count(npa_core* c) noexcept {
    return n_shell_fields + c->path_count * n_path_fields;
}

void npa_core_stat_names(npa_core* c, char* names, npa_u32 count) noexcept {
    npa_u32 i = 0;
    for (npa_u32 f = 0; f < n_shell_fields && i < count; ++f, ++i) {
        stat_name(names + i * NPA_CORE_STAT_NAME, "shell_", shell_fields[f].name);
    }
    for (npa_u32 p = 0; p < c->path_count; ++p) {
        for (npa_u32 f = 0; f < n_path_fields && i < count; ++f, ++i) {
            stat_name(names + i * NPA_CORE_STAT_NAME, c->path_labels[p], path_fields[f].name);
        }
    }
}

void npa_core_stat_values(npa_core* c, npa_u64* values, npa_u32 count) noexcept {
    npa_u32 i = 0;
    const npa::shell_queue_counters& sc = c->shell->counters(0);
    for (npa_u32 f = 0; f < n_shell_fields && i < count; ++f, ++i) {
        values[i] = sc.*shell_fields[f].field;
    }
    for (npa_u32 p = 0; p < c->path_count; ++p) {
        const npa::queue_stats q = c->shell->path_stats(c->paths[p], 0);
        for (npa_u32 f = 0; f < n_path_fields && i < count; ++f, ++i) {
            values[i] = q.*path_fields[f].field;
        }
    }
}

} // extern "C"

// ---- the C++ runtime the core uses: operator new and delete ----------------------------
//
// Over kvmalloc (npa_kmod_alloc), which returns memory aligned for any fundamental type
// (and page-aligned from a page up). Over-aligned types (the shell's queue state is
// cache-line aligned) get a block with room to align it, the original pointer kept just
// before the aligned one. Control path only: never called on the data path.

namespace {

void* npa_aligned_alloc(std::size_t bytes, std::size_t align) noexcept {
    if (align <= alignof(std::max_align_t)) {
        return npa_kmod_alloc(bytes);
    }
    void* raw = npa_kmod_alloc(bytes + align + sizeof(void*));
    if (raw == nullptr) {
        return nullptr;
    }
    const auto at = (reinterpret_cast<std::uintptr_t>(raw) + sizeof(void*) + align - 1) &
                    ~(std::uintptr_t{align} - 1);
    reinterpret_cast<void**>(at)[-1] = raw;
    return reinterpret_cast<void*>(at);
}

void npa_aligned_free(void* p, std::size_t align) noexcept {
    if (p == nullptr) {
        return;
    }
    npa_kmod_free(align <= alignof(std::max_align_t) ? p : static_cast<void**>(p)[-1]);
}

} // namespace

void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return npa_kmod_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return npa_kmod_alloc(n); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return npa_aligned_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return npa_aligned_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { npa_kmod_free(p); }
void operator delete[](void* p) noexcept { npa_kmod_free(p); }
void operator delete(void* p, std::size_t) noexcept { npa_kmod_free(p); }
void operator delete[](void* p, std::size_t) noexcept { npa_kmod_free(p); }
void operator delete(void* p, std::align_val_t a) noexcept {
    npa_aligned_free(p, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::align_val_t a) noexcept {
    npa_aligned_free(p, static_cast<std::size_t>(a));
}
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
    npa_aligned_free(p, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept {
    npa_aligned_free(p, static_cast<std::size_t>(a));
}
