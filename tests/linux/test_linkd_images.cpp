// npa-linkd's plugin images, without privileges: the flags and config settings, the
// public key files, scanning the plugin directory, choosing by device and every refusal,
// and loading the image the build produced (the file the sim's tests load) for an 82576
// VF's window. The daemon running it over a VF is the guest rig's guest_linkd_pci_image.
#include <doctest/doctest.h>

#include "config.hpp"
#include "plugin_images.hpp"

#include <npa/image/image_files.hpp>
#include <npa/image/signing.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace npa::lnx::tools;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t vf_id = npa::image::pci_device_id(0x8086, 0x10ca);
constexpr std::uint32_t vmxnet3_id = npa::image::pci_device_id(0x15ad, 0x07b0);
constexpr std::uint32_t simnic_id = npa::image::sim_device_id(1);

bool parse(std::vector<const char*> args, daemon_config& cfg, std::string& err) {
    args.insert(args.begin(), "npa-linkd");
    return parse_args(static_cast<int>(args.size()), args.data(), cfg, err);
}

/// A fresh directory of its own, removed with its contents at the end.
struct temp_dir {
    fs::path path;
    temp_dir() {
        char p[] = "/tmp/npa-linkd-images-XXXXXX";
        REQUIRE(::mkdtemp(p) != nullptr);
        path = p;
    }
    ~temp_dir() { fs::remove_all(path); }
    std::string str() const { return path.string(); }
    void put(const char* name, const std::string& from) const { fs::copy_file(from, path / name); }
    void write(const char* name, const std::string& text) const {
        std::ofstream(path / name, std::ios::binary) << text;
    }
};

std::string text_of(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
    std::string s;
    char b[3];
    for (std::size_t i = 0; i < n; ++i) {
        std::snprintf(b, sizeof b, "%02x", p[i]);
        s += b;
    }
    return s;
}

std::vector<trusted_key> keys_from(const char* file) {
    trusted_key k{};
    std::string err;
    REQUIRE_MESSAGE(read_trusted_key(file, k, err), err);
    return {k};
}

} // namespace

TEST_CASE("flags and config: a pci image lower, its plugin directory and trusted keys") {
    daemon_config cfg;
    std::string err;
    REQUIRE_MESSAGE(parse({"--plugin-dir", "/usr/lib/npa/plugins", "--trusted-key", "/etc/a.pub",
                           "--trusted-key", "/etc/b.pub", "--lower", "0000:01:10.0:pci:image",
                           "--lower", "00:03.0:pci:vmxnet3"},
                          cfg, err),
                    err);
    CHECK(cfg.plugin_dir == "/usr/lib/npa/plugins");
    CHECK(cfg.trusted_keys == std::vector<std::string>{"/etc/a.pub", "/etc/b.pub"});
    REQUIRE(cfg.lowers.size() == 2);
    CHECK(cfg.lowers[0].device == pci_device::image);
    CHECK(cfg.lowers[0].plugin_name() == "pci image");

    temp_dir d;
    d.write("linkd.conf", "plugin_dir = /srv/images\ntrusted_key = /etc/v.pub\n"
                          "lower = 0000:01:10.0 pci image\nlower = 0000:01:10.2 pci image\n");
    daemon_config fc;
    REQUIRE_MESSAGE(parse({"--config", (d.path / "linkd.conf").c_str()}, fc, err), err);
    CHECK(fc.plugin_dir == "/srv/images");
    CHECK(fc.trusted_keys == std::vector<std::string>{"/etc/v.pub"});
    CHECK(fc.lowers.size() == 2);

    daemon_config c3;
    CHECK_FALSE(parse({"--trusted-key", "/k.pub", "--lower", "00:03.0:pci:image"}, c3, err));
    CHECK(err.find("--plugin-dir") != std::string::npos);
    daemon_config c4;
    CHECK_FALSE(parse({"--plugin-dir", "/d", "--lower", "00:03.0:pci:image"}, c4, err));
    CHECK(err.find("--trusted-key") != std::string::npos);
    daemon_config c5;
    CHECK_FALSE(parse({"--plugin-dir", "/d", "--trusted-key", "/k", "--lower", "00:03.0:pci:image",
                       "--lower", "00:04.0:pci:image", "--lower", "00:05.0:pci:image"},
                      c5, err));
    CHECK(err == "at most 2 lowers may use pci image");
    daemon_config c6;
    CHECK_FALSE(parse({"--lower", "00:03.0:pci:imag"}, c6, err));
    CHECK(err.find("expected vmxnet3, igbvf or image") != std::string::npos);
    daemon_config c7;
    CHECK_FALSE(parse({"--plugin-dir", "", "--lower", "va0:af_packet"}, c7, err));
    CHECK(err == "--plugin-dir: plugin_dir needs a directory");
}

TEST_CASE("trusted keys: a public key file; the TEST key's is its seed's public key") {
    trusted_key k{};
    std::string err;
    REQUIRE_MESSAGE(read_trusted_key(NPA_TEST_PUB, k, err), err);
    const auto seed = npa::image::read_seed(NPA_TEST_SEED);
    REQUIRE(seed.has_value());
    const npa::image::public_key pk = npa::image::public_key_of(*seed);
    CHECK(std::equal(k.begin(), k.end(), pk.begin()));

    temp_dir d;
    d.write("short.pub", "d3120ba747\n");
    d.write("junk.pub", std::string(64, 'x') + "\n");
    CHECK_FALSE(read_trusted_key((d.path / "short.pub").string(), k, err));
    CHECK(err.find("not an Ed25519 public key") != std::string::npos);
    CHECK_FALSE(read_trusted_key((d.path / "junk.pub").string(), k, err));
    CHECK(err.find("junk.pub") != std::string::npos);
    CHECK_FALSE(read_trusted_key((d.path / "none.pub").string(), k, err));
    CHECK(err.find("cannot open") != std::string::npos);
    CHECK_FALSE(read_trusted_key(d.str(), k, err));
    CHECK(err.find("not a regular file") != std::string::npos);
}

TEST_CASE("the plugin directory: images chosen by the device their header names") {
    temp_dir d;
    d.put("igbvf.npai", NPA_IGBVF_IMAGE);
    d.put("simnic.npai", NPA_SIMNIC_IMAGE);
    d.write("README", "not an image, not named *.npai: ignored");
    d.write("broken.npai", "not an image");
    std::vector<image_file> images;
    std::vector<std::string> skipped;
    std::string err;
    REQUIRE_MESSAGE(scan_plugin_dir(d.str(), images, skipped, err), err);
    REQUIRE(images.size() == 2);
    CHECK(images[0].path == d.str() + "/igbvf.npai");
    CHECK(images[0].device_id == vf_id);
    CHECK(images[0].name == "igbvf");
    CHECK(images[1].device_id == simnic_id);
    REQUIRE(skipped.size() == 1);
    CHECK(skipped[0].find("broken.npai") != std::string::npos);

    image_file f;
    REQUIRE_MESSAGE(select_image(d.str(), vf_id, f, err), err);
    CHECK(f.path == d.str() + "/igbvf.npai");

    SUBCASE("no image for the device: the sentence lists what the directory has") {
        CHECK_FALSE(select_image(d.str(), vmxnet3_id, f, err));
        CHECK(err.find("holds no image for 15ad:07b0") != std::string::npos);
        CHECK(err.find("igbvf.npai for 8086:10ca") != std::string::npos);
        CHECK(err.find("not an image: " + d.str() + "/broken.npai") != std::string::npos);
    }
    SUBCASE("two images for one device: neither is chosen") {
        d.put("igbvf-copy.npai", NPA_IGBVF_IMAGE);
        CHECK_FALSE(select_image(d.str(), vf_id, f, err));
        CHECK(err.find("holds 2 images for 8086:10ca") != std::string::npos);
        CHECK(err.find("igbvf-copy.npai") != std::string::npos);
        CHECK(err.find("keep one") != std::string::npos);
    }
    SUBCASE("an unreadable directory") {
        CHECK_FALSE(select_image(d.str() + "/missing", vf_id, f, err));
        CHECK(err.find("plugin directory " + d.str() + "/missing: cannot read it") == 0);
        CHECK_FALSE(select_image(d.str() + "/README", vf_id, f, err));
        CHECK(err.find("cannot read it (Not a directory)") != std::string::npos);
    }
}

TEST_CASE("loading: the build's VF image for a VF's window, with its digest and signer") {
    temp_dir d;
    d.put("igbvf.npai", NPA_IGBVF_IMAGE);
    npa::igbvf_window w;
    lower_image im;
    std::string err;
    const auto keys = keys_from(NPA_TEST_PUB);
    REQUIRE_MESSAGE(load_lower_image(d.str(), keys, vf_id, w, im, err), err);
    CHECK(im.file == d.str() + "/igbvf.npai");
    CHECK(im.name == "igbvf");
    CHECK(im.dev.ops != nullptr);
    CHECK(im.dev.window == &w);
    // The digest is the file's, computed by the signing code; the signer the TEST key.
    const auto bytes = npa::image::read_file(NPA_IGBVF_IMAGE);
    REQUIRE(bytes.has_value());
    const auto digest = npa::image::image_digest(*bytes);
    CHECK(im.digest == hex(digest.data(), digest.size()));
    CHECK(im.signer == text_of(NPA_TEST_PUB));
    CHECK(unused_image_note(d.str(), vf_id, "igbvf").find(d.str() + "/igbvf.npai") !=
          std::string::npos);
    CHECK(unused_image_note(d.str(), vmxnet3_id, "vmxnet3").empty());
    CHECK(unused_image_note("", vf_id, "igbvf").empty());
    CHECK(image_device_supported(vf_id));
    CHECK_FALSE(image_device_supported(vmxnet3_id));
}

TEST_CASE("loading refusals: unknown signer, altered image, wrong device; nothing bound") {
    temp_dir d;
    npa::igbvf_window w;
    lower_image im;
    std::string err;
    SUBCASE("signed by a key the daemon does not trust") {
        d.put("igbvf.npai", NPA_IGBVF_IMAGE);
        CHECK_FALSE(load_lower_image(d.str(), keys_from(NPA_OTHER_PUB), vf_id, w, im, err));
        CHECK(err == d.str() + "/igbvf.npai: refused: image: not signed by a trusted key "
                               "(unknown signer)");
    }
    SUBCASE("no trusted key at all") {
        d.put("igbvf.npai", NPA_IGBVF_IMAGE);
        CHECK_FALSE(load_lower_image(d.str(), {}, vf_id, w, im, err));
        CHECK(err.find("unknown signer") != std::string::npos);
    }
    SUBCASE("an altered byte: the digest no longer matches") {
        auto bytes = npa::image::read_file(NPA_IGBVF_IMAGE);
        REQUIRE(bytes.has_value());
        (*bytes)[bytes->size() - 1] ^= std::byte{1};
        std::ofstream(d.path / "igbvf.npai", std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes->data()),
                   static_cast<std::streamsize>(bytes->size()));
        CHECK_FALSE(load_lower_image(d.str(), keys_from(NPA_TEST_PUB), vf_id, w, im, err));
        CHECK(err.find("digest mismatch") != std::string::npos);
    }
    SUBCASE("an image for another device than the window's") {
        d.put("simnic.npai", NPA_SIMNIC_IMAGE);
        CHECK_FALSE(load_lower_image(d.str(), keys_from(NPA_TEST_PUB), simnic_id, w, im, err));
        CHECK(err.find("the plugin drives another device") != std::string::npos);
        CHECK(err.find("(the function is an 8086:10ca)") != std::string::npos);
    }
    SUBCASE("no image for the VF") {
        d.put("simnic.npai", NPA_SIMNIC_IMAGE);
        CHECK_FALSE(load_lower_image(d.str(), keys_from(NPA_TEST_PUB), vf_id, w, im, err));
        CHECK(err.find("holds no image for 8086:10ca") != std::string::npos);
    }
    CHECK(im.dev.ops == nullptr);
    CHECK(im.digest.empty());
}

TEST_CASE("a PCI function's vendor:device from sysfs") {
    temp_dir d;
    fs::create_directory(d.path / "0000:01:10.0");
    d.write("0000:01:10.0/vendor", "0x8086\n");
    d.write("0000:01:10.0/device", "0x10ca\n");
    std::uint32_t id = 0;
    std::string err;
    REQUIRE_MESSAGE(read_pci_device_id(d.str(), "0000:01:10.0", id, err), err);
    CHECK(id == vf_id);
    d.write("0000:01:10.0/device", "ten\n");
    CHECK_FALSE(read_pci_device_id(d.str(), "0000:01:10.0", id, err));
    CHECK(err.find("is not a 16-bit id") != std::string::npos);
    CHECK_FALSE(read_pci_device_id(d.str(), "0000:02:00.0", id, err));
    CHECK(err.find("PCI function 0000:02:00.0: ") == 0);
}

TEST_CASE("a real function's ids from /sys, whose attribute files claim 4096 bytes") {
    const fs::path sys = "/sys/bus/pci/devices";
    std::error_code ec;
    fs::directory_iterator it(sys, ec);
    if (ec || it == fs::directory_iterator{}) {
        MESSAGE("no PCI functions in " << sys.string() << ": nothing to read");
        return;
    }
    std::uint32_t id = 0;
    std::string err;
    const std::string address = it->path().filename().string();
    REQUIRE_MESSAGE(read_pci_device_id(sys.string(), address, id, err), err);
    CHECK((id >> 16) != 0);
    CHECK((id >> 16) != 0xffff);
}
