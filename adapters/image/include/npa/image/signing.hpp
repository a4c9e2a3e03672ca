// npa/image/signing.hpp: the digest and Ed25519 signature of a plugin image (libsodium).
//
// The digest is SHA-512 of the whole file with the header's digest and signature fields
// read as zeros; the signature is Ed25519 (deterministic) over the digest, so the same
// image signed with the same key is the same file. Shared by the pack tool, which signs,
// and the loader, which checks.
#pragma once

#include <npa/image/format.hpp>

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::image {

using digest_bytes = std::array<std::uint8_t, crypto_hash_sha512_BYTES>;
using public_key = std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES>;
using key_seed = std::array<std::uint8_t, crypto_sign_SEEDBYTES>;
static_assert(sizeof(image_header::digest) == crypto_hash_sha512_BYTES);
static_assert(sizeof(image_header::signature) == crypto_sign_BYTES);

/// The digest of a file at least sizeof(image_header) long.
[[nodiscard]] inline digest_bytes image_digest(std::span<const std::byte> file) noexcept {
    constexpr std::size_t from = offsetof(image_header, digest);
    constexpr std::size_t to = offsetof(image_header, signature) + sizeof(image_header::signature);
    const std::uint8_t zeros[to - from] = {};
    const auto* p = reinterpret_cast<const unsigned char*>(file.data());
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, p, from);
    crypto_hash_sha512_update(&st, zeros, sizeof(zeros));
    crypto_hash_sha512_update(&st, p + to, file.size() - to);
    digest_bytes d{};
    crypto_hash_sha512_final(&st, d.data());
    return d;
}

/// Writes the digest and the signature with the key made from `seed` into the header.
/// False if libsodium cannot start or the file is shorter than a header.
[[nodiscard]] inline bool sign_image(std::span<std::byte> file, const key_seed& seed) noexcept {
    if (sodium_init() < 0 || file.size() < sizeof(image_header)) {
        return false;
    }
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed.data());
    const digest_bytes d = image_digest(file);
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, nullptr, d.data(), d.size(), sk);
    sodium_memzero(sk, sizeof(sk));
    auto* h = file.data();
    std::memcpy(h + offsetof(image_header, digest), d.data(), d.size());
    std::memcpy(h + offsetof(image_header, signature), sig, sizeof(sig));
    return true;
}

/// The public key of the key made from `seed` (a trusted key in tests).
[[nodiscard]] inline public_key public_key_of(const key_seed& seed) noexcept {
    public_key pk{};
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    if (sodium_init() >= 0) {
        crypto_sign_seed_keypair(pk.data(), sk, seed.data());
        sodium_memzero(sk, sizeof(sk));
    }
    return pk;
}

/// Reads the 64 hex digits a seed file starts with; false if it does not.
[[nodiscard]] inline bool parse_seed_hex(const char* hex, std::size_t len, key_seed& out) noexcept {
    std::size_t bin_len = 0;
    const char* end = nullptr; // a trailing newline or comment is not part of the seed
    return sodium_hex2bin(out.data(), out.size(), hex, len, nullptr, &bin_len, &end) == 0 &&
           bin_len == out.size();
}

} // namespace npa::image
