// npa/image/parse.hpp: checking a plugin image's structure and relocating it into memory
// the caller gives. No OS, no allocation, no cryptography (the digest and the signature
// are the host's: adapters/image), so the same code runs in any host and under a fuzzer.
//
// parse_image() accepts a file only if every offset, size and count in it stays inside
// the file and inside the image's memory, every segment is page-aligned and never both
// writable and executable, the entry is in an executable segment, and every relocation is
// a relative one inside a non-executable segment pointing inside the image. Refusals say
// which rule, as a static string.
#pragma once

#include <npa/image/format.hpp>
#include <npa/status.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::image {

/// A checked image: copies of the header and segment table, and the file it came from.
struct image_view {
    image_header header{};
    image_segment segments[max_segments]{};
    std::span<const std::byte> file;

    [[nodiscard]] std::span<const image_segment> segment_list() const noexcept {
        return {segments, header.segment_count};
    }
    [[nodiscard]] image_reloc reloc(std::uint32_t i) const noexcept {
        image_reloc r;
        std::memcpy(&r, file.data() + header.reloc_offset + std::size_t{i} * sizeof(r), sizeof(r));
        return r;
    }
    /// The segment holding memory offset `off`, or null.
    [[nodiscard]] const image_segment* segment_at(std::uint64_t off) const noexcept {
        for (const image_segment& s : segment_list()) {
            if (off >= s.offset && off - s.offset < s.size) {
                return &s;
            }
        }
        return nullptr;
    }
};

namespace detail {
/// [off, off + len) lies within `total` (no overflow: 64-bit sums of 32-bit values).
constexpr bool within(std::uint64_t off, std::uint64_t len, std::uint64_t total) noexcept {
    return off <= total && len <= total - off;
}
} // namespace detail

[[nodiscard]] inline status check_segments(const image_view& v) noexcept {
    const image_header& h = v.header;
    std::uint64_t end = 0;
    for (const image_segment& s : v.segment_list()) {
        if (s.offset % image_page != 0 || s.size % image_page != 0 || s.size == 0 ||
            s.reserved != 0 || !detail::within(s.offset, s.size, h.mem_size)) {
            return {errc::invalid_argument, "image: a segment is not whole pages inside the image"};
        }
        if (s.offset < end) {
            return {errc::invalid_argument, "image: segments overlap or are out of order"};
        }
        end = std::uint64_t{s.offset} + s.size;
        if ((s.prot & ~(prot_read | prot_write | prot_exec)) != 0) {
            return {errc::invalid_argument, "image: a segment has an unknown protection bit"};
        }
        if ((s.prot & prot_write) != 0 && (s.prot & prot_exec) != 0) {
            return {errc::refused, "image: a segment is both writable and executable"};
        }
    }
    const image_segment* e = v.segment_at(h.entry);
    if (e == nullptr || (e->prot & prot_exec) == 0) {
        return {errc::invalid_argument, "image: the entry point is not in an executable segment"};
    }
    return status::success();
}

[[nodiscard]] inline status check_relocs(const image_view& v) noexcept {
    for (std::uint32_t i = 0; i < v.header.reloc_count; ++i) {
        const image_reloc r = v.reloc(i);
        if (r.kind == static_cast<std::uint32_t>(reloc_kind::import) || r.symbol != 0) {
            return {errc::refused, "image: it imports a symbol (images import nothing)"};
        }
        if (r.kind != static_cast<std::uint32_t>(reloc_kind::relative)) {
            return {errc::refused, "image: a relocation kind the loader does not apply"};
        }
        const image_segment* s = v.segment_at(r.offset);
        if (r.offset % 8 != 0 || !detail::within(r.offset, 8, v.header.mem_size) ||
            r.addend > v.header.mem_size || s == nullptr) {
            return {errc::refused, "image: a relocation outside the image"};
        }
        if ((s->prot & prot_exec) != 0) {
            return {errc::refused, "image: a relocation in executable code"};
        }
    }
    return status::success();
}

/// Checks `file` and fills `out`. `out.file` refers to `file`, which must outlive it.
[[nodiscard]] inline status parse_image(std::span<const std::byte> file, image_view& out) noexcept {
    image_header& h = out.header;
    if (file.size() < sizeof(image_header)) {
        return {errc::invalid_argument, "image: truncated (shorter than its header)"};
    }
    std::memcpy(&h, file.data(), sizeof(h));
    out.file = file;
    if (h.magic != image_magic) {
        return {errc::invalid_argument, "image: bad magic (not a plugin image)"};
    }
    if (h.abi_major != abi_major || h.abi_minor > abi_minor) {
        return {errc::not_supported, "image: built for another ABI version than this host's"};
    }
    if (h.header_size != sizeof(image_header) || h.reserved != 0) {
        return {errc::invalid_argument, "image: header size does not match its ABI version"};
    }
    if (h.file_size > file.size()) {
        return {errc::invalid_argument, "image: truncated (shorter than its header says)"};
    }
    if (h.file_size < file.size()) {
        return {errc::invalid_argument, "image: trailing bytes after the image"};
    }
    if (h.machine != native_machine) {
        return {errc::not_supported, "image: code for another machine"};
    }
    if (h.buffer_layout == 0 || (h.buffer_layout & ~known_layouts) != 0) {
        return {errc::not_supported, "image: a buffer layout this host does not know"};
    }
    if (h.name[sizeof(h.name) - 1] != '\0') {
        return {errc::invalid_argument, "image: name not terminated"};
    }
    if (h.mem_size == 0 || h.mem_size % image_page != 0 || h.mem_size > max_image_bytes ||
        h.mem_file_size > h.mem_size || !detail::within(h.mem_offset, h.mem_file_size, h.file_size)) {
        return {errc::invalid_argument, "image: memory size or offset out of range"};
    }
    if (h.segment_count == 0 || h.segment_count > max_segments ||
        !detail::within(sizeof(image_header), std::uint64_t{h.segment_count} * sizeof(image_segment),
                        h.file_size)) {
        return {errc::invalid_argument, "image: segment table out of range"};
    }
    if (!detail::within(h.reloc_offset, std::uint64_t{h.reloc_count} * sizeof(image_reloc),
                        h.file_size)) {
        return {errc::invalid_argument, "image: relocation table out of range"};
    }
    std::memcpy(out.segments, file.data() + sizeof(image_header),
                std::size_t{h.segment_count} * sizeof(image_segment));
    if (const status st = check_segments(out); !st) {
        return st;
    }
    return check_relocs(out);
}

/// Lays a parsed image out in `mem` (at least header.mem_size bytes, which will live at
/// address `base`) and applies its relocations. The caller protects the segments after.
inline void relocate_image(const image_view& v, std::span<std::byte> mem, std::uint64_t base) noexcept {
    const image_header& h = v.header;
    std::memcpy(mem.data(), v.file.data() + h.mem_offset, h.mem_file_size);
    std::memset(mem.data() + h.mem_file_size, 0, h.mem_size - h.mem_file_size);
    for (std::uint32_t i = 0; i < h.reloc_count; ++i) {
        const image_reloc r = v.reloc(i);
        const std::uint64_t value = base + r.addend;
        std::memcpy(mem.data() + r.offset, &value, sizeof(value));
    }
}

} // namespace npa::image
