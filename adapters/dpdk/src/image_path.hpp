// image_path.hpp: a net_npa path whose plugin is a plugin image (adapters/image).
//
// dev(sim:simnic) with plugin=<file|dir> and trusted_key=<file>: the device is a simnic
// model of npa's simulator running in this process on a thread of its own, cabled to a
// loop (every frame it sends comes back, as a looping net_ring does), and its data path is
// the image: the same signed file the sim and npa-linkd load, loaded for rte_mbuf
// (npa::image::buffer_layout::rte_mbuf), so the image reads and writes the application's
// mbufs itself. The model reaches those mbufs as a NIC behind an IOMMU in VA mode would:
// DPDK's memory (every memseg list, IOVA = virtual address) is borrowed into the model's
// guest memory, next to a region of its own for the rings.
//
// open() does everything that can fail before net_npa creates anything: it reads the
// key and the image, loads and checks the image (structure, device, buffer layout,
// digest, signature: npa/image/posix_loader.hpp), and builds the model. Each refusal is a
// sentence naming the argument.
#pragma once

#include "devargs.hpp"

#include <npa/image/image_files.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/image/parse.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/image/signing.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/wire.hpp>

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_memory.h>

#include <pthread.h>
#include <sched.h>

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace npa::dpdk {

/// The far end of a sim device's cable: every frame goes straight back.
class wire_loop final : public sim::frame_port {
public:
    void frame_in(const sim::frame& f) noexcept override { (void)frame_out(f); }
};

/// The control channel of a sim device path. A sim device's control path is its host's
/// (the window has no MAC, VLAN or MTU register), and the host here is a looped cable
/// that filters nothing: every request is accepted.
struct sim_control {
    status submit(const control_request&) { return {}; }
    status submit_batch(std::span<const control_request>) { return {}; }
};
static_assert(npa::control_channel<sim_control>);

class image_path_device {
public:
    /// Queue pairs and the largest ring the model offers (dev_info reports them).
    static constexpr std::uint16_t queues = 4;
    static constexpr std::uint32_t max_ring = 1024;
    static constexpr std::uint32_t min_ring = 32;
    /// The largest frame on the sim wire, so the MTU is the Ethernet one.
    static constexpr std::uint16_t mtu = 1500;
    /// How long a switch away from this path reads its RX after its last frame
    /// (switch_policy::rx_quiet_ns), and the drain timeout of a port with an image path.
    /// The model steps on a thread the scheduler may hold off for milliseconds on a busy
    /// machine; frames it has sent round its loop wait in its inbox meanwhile, and a
    /// drain that ended before they reached the RX ring lost them (1.5 ms lost a burst
    /// in 2 of 3 testpmd runs of 10 switches on the shared 2-CPU machine).
    static constexpr std::uint64_t rx_quiet_ns = 20'000'000;
    static constexpr std::uint64_t drain_timeout_ns = 50'000'000;

    /// Everything or nothing: on failure, null and the sentence in err.
    static std::unique_ptr<image_path_device> open(const npa_devargs& a, std::string& err) {
        std::unique_ptr<image_path_device> d(new (std::nothrow) image_path_device);
        if (!d) {
            err = "no memory";
            return nullptr;
        }
        image::public_key key{};
        if (!read_key(a.trusted_key.data(), key, err)) return nullptr;
        std::string file;
        if (!choose_image(a.plugin.data(), file, err)) return nullptr;
        const auto bytes = image::read_file(file.c_str());
        if (!bytes) {
            err = "plugin=" + file + ": cannot read the file: " + std::strerror(errno);
            return nullptr;
        }
        auto img = image::load_image(*bytes, device_id, std::span<const image::public_key>(&key, 1),
                                     image::buffer_layout::rte_mbuf);
        if (!img.ok()) {
            err = "plugin=" + file + ": " + img.error().reason();
            return nullptr;
        }
        d->image_.emplace(std::move(*img));
        if (!d->build_model(err)) return nullptr;
        auto bound = d->image_->bind(d->dev_->window());
        if (!bound.ok()) {
            err = "plugin=" + file + ": " + bound.error().reason();
            return nullptr;
        }
        d->bound_ = std::move(*bound);
        d->file_ = file;
        d->digest_ = hex(d->image_->digest());
        d->signer_ = hex(d->image_->signer());
        return d;
    }

    ~image_path_device() {
        stop();
        if (dev_) {
            sim::disconnect(*dev_, loop_);
        }
    }

    [[nodiscard]] image::image_device& device() noexcept { return bound_; }
    [[nodiscard]] sim_control& control() noexcept { return ctl_; }
    [[nodiscard]] bool link_up() const { return dev_->link_up(); }
    /// The model runs on a thread of its own while the port is started: an EAL control
    /// thread, so it runs on the CPUs the application's lcores leave (a thread started
    /// from an lcore would inherit that lcore's CPU and compete with its polling).
    [[nodiscard]] bool start() {
        if (running_.exchange(true)) return true;
        if (rte_ctrl_thread_create(&thread_, "npa-sim-simnic", nullptr, &step_loop, this) != 0) {
            running_ = false;
            return false;
        }
        return true;
    }
    void stop() {
        if (!running_.exchange(false)) return;
        (void)pthread_join(thread_, nullptr);
    }
    /// One step of the model on the caller's thread (it waits for a step the model's
    /// own thread is in): a drain's reads do not depend on when that thread runs.
    void step_now() noexcept { (void)dev_->step(); }
    /// Frames the model dropped: no RX buffer posted, no queue active (arrived after a
    /// switch away quiesced it), its inbox full, or its link down.
    [[nodiscard]] std::uint64_t rx_missed() const {
        const sim::simnic_device_stats ds = dev_->device_stats();
        std::uint64_t n = ds.rx_no_queue + ds.rx_overrun + ds.rx_link_down;
        for (std::uint16_t q = 0; q < queues; ++q) n += dev_->stats(q).rx_no_desc;
        return n;
    }

    [[nodiscard]] const std::string& file() const noexcept { return file_; }
    [[nodiscard]] const char* plugin_name() const noexcept { return image_->name(); }
    [[nodiscard]] const std::string& digest() const noexcept { return digest_; }
    [[nodiscard]] const std::string& signer() const noexcept { return signer_; }

private:
    static constexpr std::uint32_t device_id = sim::simnic_window::image_device_id;

    image_path_device() = default;

    /// Steps the model while the port runs; yields when a step found nothing to do.
    static void* step_loop(void* self) {
        auto* d = static_cast<image_path_device*>(self);
        // relaxed: a stop flag that publishes nothing; pthread_join orders what follows
        while (d->running_.load(std::memory_order_relaxed)) {
            if (!d->dev_->step()) sched_yield();
        }
        return nullptr;
    }

    template <std::size_t N>
    static std::string hex(const std::array<std::uint8_t, N>& b) {
        char out[2 * N + 1];
        sodium_bin2hex(out, sizeof out, b.data(), N);
        return out;
    }

    static bool read_key(const char* path, image::public_key& key, std::string& err) {
        const auto t = image::read_file(path);
        if (!t) {
            err = std::string("trusted_key=") + path + ": cannot read the file: " + std::strerror(errno);
            return false;
        }
        // A public key file is 64 hex digits, as a seed file is (keys/*.pub).
        if (!image::parse_seed_hex(reinterpret_cast<const char*>(t->data()), t->size(), key)) {
            err = std::string("trusted_key=") + path +
                  ": not a public key (expected 64 hex digits, as in keys/*.pub)";
            return false;
        }
        return true;
    }

    /// plugin= names the image file, or a directory holding the one image (*.npai) whose
    /// header names the device.
    static bool choose_image(const char* path, std::string& out, std::string& err) {
        struct stat st{};
        if (::stat(path, &st) != 0) {
            err = std::string("plugin=") + path + ": " + std::strerror(errno);
            return false;
        }
        if (!S_ISDIR(st.st_mode)) {
            out = path;
            return true;
        }
        DIR* dir = ::opendir(path);
        if (dir == nullptr) {
            err = std::string("plugin=") + path + ": cannot read the directory: " + std::strerror(errno);
            return false;
        }
        std::vector<std::string> found;
        while (const dirent* e = ::readdir(dir)) {
            const std::string n = e->d_name;
            if (n.size() <= 5 || n.compare(n.size() - 5, 5, ".npai") != 0) continue;
            const std::string f = std::string(path) + "/" + n;
            const auto b = image::read_file(f.c_str());
            image::image_view v;
            if (b && image::parse_image(*b, v).ok() && v.header.device_id == device_id) {
                found.push_back(f);
            }
        }
        ::closedir(dir);
        std::sort(found.begin(), found.end());
        if (found.size() != 1) {
            err = std::string("plugin=") + path + ": " +
                  (found.empty() ? "no image in the directory is for sim:simnic"
                                 : "more than one image in the directory is for sim:simnic (" +
                                       found[0] + ", " + found[1] + "): give the file");
            return false;
        }
        out = found[0];
        return true;
    }

    /// Guest memory (DPDK's memseg lists, then the rings' region after them) and the model.
    bool build_model(std::string& err) {
        if (rte_eal_iova_mode() != RTE_IOVA_VA) {
            err = "dev(sim:simnic): the sim device reaches mbufs by IOVA = virtual address; "
                  "run EAL with --iova-mode=va";
            return false;
        }
        std::vector<borrowed_memory> lists;
        (void)rte_memseg_list_walk(
            [](const rte_memseg_list* msl, void* arg) {
                if (!msl->external && msl->base_va != nullptr && msl->len != 0) {
                    auto* base = static_cast<std::byte*>(msl->base_va);
                    static_cast<std::vector<borrowed_memory>*>(arg)->emplace_back(
                        base, msl->len, reinterpret_cast<std::uintptr_t>(base));
                }
                return 0;
            },
            &lists);
        std::sort(lists.begin(), lists.end(),
                  [](const auto& x, const auto& y) { return x.iova_base() < y.iova_base(); });
        if (lists.size() + 1 > sim::guest_memory::max_regions) {
            err = "dev(sim:simnic): DPDK has more memory lists than the sim device can map";
            return false;
        }
        for (const borrowed_memory& m : lists) {
            if (const status st = mem_.add_borrowed_region(m); !st.ok()) {
                err = std::string("dev(sim:simnic): ") + st.reason();
                return false;
            }
        }
        // After the borrowed regions: add_region places it past the last one.
        if (const status st = mem_.add_region(std::size_t{queues} *
                                              sim::simnic_ring_bytes(max_ring, max_ring));
            !st.ok()) {
            err = std::string("dev(sim:simnic): ") + st.reason();
            return false;
        }
        sim::simnic_config c;
        c.queues = queues;
        c.max_ring_size = max_ring;
        c.name = "sim:simnic";
        auto d = sim::simnic::create(mem_, c);
        if (!d.ok()) {
            err = std::string("dev(sim:simnic): ") + d.error().reason();
            return false;
        }
        dev_ = std::move(*d);
        sim::connect(*dev_, loop_);
        return true;
    }

    sim::guest_memory mem_;
    wire_loop loop_;
    std::unique_ptr<sim::simnic> dev_;
    std::optional<image::loaded_image> image_;
    image::image_device bound_{};
    sim_control ctl_{};
    std::string file_, digest_, signer_;
    std::atomic<bool> running_{false};
    pthread_t thread_{};
};

} // namespace npa::dpdk
