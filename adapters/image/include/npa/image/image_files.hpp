// npa/image/image_files.hpp: reading image files and key seed files from disk (the pack
// tool, tests, benchmarks; a host with its own I/O reads the bytes its own way).
#pragma once

#include <npa/image/signing.hpp>

#include <cstddef>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

namespace npa::image {

/// The whole file, or nothing if it cannot be read.
[[nodiscard]] inline std::optional<std::vector<std::byte>> read_file(const char* path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    const std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    for (std::size_t i = 0; i < c.size(); ++i) {
        b[i] = static_cast<std::byte>(c[i]);
    }
    return b;
}

/// The seed a seed file (64 hex digits) holds, or nothing.
[[nodiscard]] inline std::optional<key_seed> read_seed(const char* path) {
    const auto t = read_file(path);
    key_seed s{};
    if (!t || !parse_seed_hex(reinterpret_cast<const char*>(t->data()), t->size(), s)) {
        return std::nullopt;
    }
    return s;
}

} // namespace npa::image
