// tests/dpdk/devargs_test.cpp: net_npa device arguments, valid and malformed.
#include <doctest/doctest.h>

#include "devargs.hpp"

#include <string>

using npa::dpdk::npa_devargs;
using npa::dpdk::parse_devargs;

namespace {
std::string error_of(const char* args) {
    npa_devargs a;
    const npa::status st = parse_devargs(args, a);
    CHECK_FALSE(st.ok());
    CHECK(st.code() == npa::errc::invalid_argument);
    return a.error.data();
}
} // namespace

TEST_CASE("sub-devices keep their own arguments and their order") {
    npa_devargs a;
    REQUIRE(parse_devargs("dev(net_null0,size=64,copy=1),dev(net_ring0),dev(0000:03:00.1)", a).ok());
    REQUIRE(a.dev_count == 3);
    CHECK(std::string{a.devs[0].data()} == "net_null0,size=64,copy=1");
    CHECK(std::string{a.devs[1].data()} == "net_ring0");
    CHECK(std::string{a.devs[2].data()} == "0000:03:00.1");
    CHECK(a.active == 0);
    CHECK(a.dwell_ms == npa::dpdk::default_dwell_ms);
    CHECK(a.backoff_ms == npa::dpdk::default_backoff_ms);
    CHECK(a.auto_switch);
    CHECK(a.error[0] == '\0');
}

TEST_CASE("policy keys are parsed wherever they appear") {
    npa_devargs a;
    REQUIRE(parse_devargs("dwell_ms=250,dev(net_ring0),active=1,dev(net_ring1),backoff_ms=0,auto=0", a).ok());
    CHECK(a.dev_count == 2);
    CHECK(a.active == 1);
    CHECK(a.dwell_ms == 250);
    CHECK(a.backoff_ms == 0);
    CHECK_FALSE(a.auto_switch);
}

TEST_CASE("a sim device with a plugin image and its key") {
    npa_devargs a;
    REQUIRE(parse_devargs("dev(net_ring0),dev(sim:simnic),plugin=/opt/img/simnic=1.npai,"
                          "trusted_key=keys/k.pub,active=1", a).ok());
    CHECK(a.dev_count == 2);
    CHECK(npa::dpdk::is_sim_device(a.devs[1].data()));
    CHECK_FALSE(npa::dpdk::is_sim_device(a.devs[0].data()));
    CHECK(std::string{a.plugin.data()} == "/opt/img/simnic=1.npai"); // '=' is the file's
    CHECK(std::string{a.trusted_key.data()} == "keys/k.pub");
    CHECK(a.active == 1);
    npa_devargs b;
    REQUIRE(parse_devargs("dev(net_null0)", b).ok());
    CHECK(b.plugin[0] == '\0');
    CHECK(b.trusted_key[0] == '\0');
}

TEST_CASE("plugin images: every wrong combination is refused with its sentence") {
    CHECK(error_of("dev(sim:simnic)") ==
          "a sim device runs a plugin image: give plugin=<image file or directory> and "
          "trusted_key=<public key file>");
    CHECK(error_of("dev(sim:simnic),plugin=a.npai") ==
          "plugin= needs trusted_key=<public key file>: the image's signature is checked "
          "against it");
    CHECK(error_of("dev(net_ring0),trusted_key=k.pub") ==
          "trusted_key= without plugin=: the key is for checking a plugin image");
    CHECK(error_of("dev(net_ring0),plugin=a.npai,trusted_key=k.pub") ==
          "plugin= but no device for the image: add dev(sim:simnic)");
    CHECK(error_of("dev(0000:03:10.0),plugin=a.npai,trusted_key=k.pub") ==
          "plugin= with dev(0000:03:10.0): net_npa runs plugin images over sim device models "
          "only (dev(sim:simnic)); mapping a PCI function's BAR for an image (VFIO) is not "
          "supported");
    CHECK(error_of("dev(03:10.0,arg=1),plugin=a.npai,trusted_key=k.pub").find("(VFIO)") !=
          std::string::npos);
    CHECK(error_of("dev(sim:e1000),plugin=a.npai,trusted_key=k.pub") ==
          "dev(sim:e1000): unknown sim device model 'e1000'; the models are: simnic");
    CHECK(error_of("dev(sim:simnic),plugin=,trusted_key=k.pub") ==
          "'plugin' needs a file name (plugin=<file>)");
    CHECK(error_of("dev(sim:simnic),plugin,trusted_key=k.pub") ==
          "'plugin' needs a file name (plugin=<file>)");
    CHECK(error_of("dev(sim:simnic),plugin=a,plugin=b,trusted_key=k.pub") ==
          "'plugin' given twice: give each argument once");
    const std::string long_name = "dev(sim:simnic),trusted_key=k.pub,plugin=" + std::string(600, 'x');
    CHECK(error_of(long_name.c_str()) == "plugin=: file name longer than 511 characters");
}

TEST_CASE("malformed arguments are rejected with a sentence that says why") {
    CHECK(error_of(nullptr).find("at least one dev(<device>) is required") != std::string::npos);
    CHECK(error_of("").find("at least one dev(<device>) is required") != std::string::npos);
    CHECK(error_of("active=0").find("no sub-device") != std::string::npos);
    CHECK(error_of("dev(net_ring0),bogus=1") ==
          "unknown argument 'bogus=1'; expected net_npa<N>,dev(<device>)[,dev(<device>)...]"
          "[,active=<i>][,dwell_ms=<n>][,backoff_ms=<n>][,auto=0|1]"
          "[,plugin=<file|dir>,trusted_key=<file>]");
    CHECK(error_of("dev(net_ring0").find("unbalanced '('") != std::string::npos);
    CHECK(error_of("dev(net_ring0))").find("unbalanced ')' at offset 14") != std::string::npos);
    CHECK(error_of("dev()") == "dev() is empty: give a DPDK device, e.g. dev(net_ring0)");
    CHECK(error_of("dev(net_ring0)x") == "'dev(net_ring0)x': text after dev(...)");
    CHECK(error_of("dev(net_ring0),dev(net_ring0)") == "sub-device 'net_ring0' given twice");
    CHECK(error_of("dev(net_ring0),,dev(net_ring1)").find("two commas") != std::string::npos);
    CHECK(error_of("dev(net_ring0),dev(net_ring1),active=2") ==
          "active=2 but only 2 sub-devices given (paths count from 0)");
    CHECK(error_of("dev(net_ring0),dwell_ms=-5") ==
          "dwell_ms=-5: expected a whole number from 0 to 3600000");
    CHECK(error_of("dev(net_ring0),dwell_ms=99999999999") ==
          "dwell_ms=99999999999: expected a whole number from 0 to 3600000");
    CHECK(error_of("dev(net_ring0),auto=yes") == "auto=yes: expected a whole number from 0 to 1");
    CHECK(error_of("dev(net_ring0),dwell_ms") == "'dwell_ms' needs a value (dwell_ms=<n>)");
    CHECK(error_of("dev(net_ring0),dwell_ms=10,dev(net_ring1),dwell_ms=20") ==
          "'dwell_ms' given twice: give each argument once");
    CHECK(error_of("active=0,dev(net_ring0),active=0") ==
          "'active' given twice: give each argument once");
    CHECK(error_of("dev(a),dev(b),dev(c),dev(d),dev(e),dev(f),dev(g),dev(h),dev(i)") ==
          "more than 8 sub-devices");
}

namespace {
std::string tel_error(const char* params) {
    static constexpr npa::dpdk::tel_param specs[] = {{"port_id", 31}, {"path", 7}};
    npa::dpdk::tel_params out;
    const npa::status st = npa::dpdk::parse_tel_params(params, specs, 2, out);
    return st.ok() ? std::string{} : std::string{out.error.data()};
}
} // namespace

TEST_CASE("telemetry parameters: 64-bit values, and a sentence for each mistake") {
    static constexpr npa::dpdk::tel_param specs[] = {{"port_id", 31}, {"path", 7}};
    npa::dpdk::tel_params out;
    REQUIRE(npa::dpdk::parse_tel_params("3,7", specs, 2, out).ok());
    CHECK(out.v[0] == 3);
    CHECK(out.v[1] == 7);
    // 2^32 + 1 does not wrap around to path 1.
    CHECK(tel_error("0,4294967297") == "path: 4294967297 is out of range (0 to 7)");
    CHECK(tel_error("0,18446744073709551617") == "path: 18446744073709551617 is out of range (0 to 7)");
    CHECK(tel_error("32,0") == "port_id: 32 is out of range (0 to 31)");
    CHECK(tel_error(nullptr) == "missing parameter 1 (port_id): expected 2 comma-separated numbers");
    CHECK(tel_error("0") == "missing parameter 2 (path): expected 2 comma-separated numbers");
    CHECK(tel_error("0,") == "missing parameter 2 (path): expected 2 comma-separated numbers");
    CHECK(tel_error("0,1,2") == "too many parameters: expected 2");
    CHECK(tel_error("0,1,") == "too many parameters: expected 2");
    CHECK(tel_error("x,1") == "port_id: 'x' is not a whole number");
    CHECK(tel_error("0,-1") == "path: '-1' is not a whole number");
    CHECK(tel_error("0, 1") == "path: ' 1' is not a whole number");
    CHECK(tel_error("0,1x") == "path: '1x' is not a whole number");
    static constexpr npa::dpdk::tel_param wide[] = {{"n", ~std::uint64_t{0}}};
    REQUIRE(npa::dpdk::parse_tel_params("18446744073709551615", wide, 1, out).ok());
    CHECK(out.v[0] == ~std::uint64_t{0});
    CHECK_FALSE(npa::dpdk::parse_tel_params("18446744073709551616", wide, 1, out).ok());
}
