// npa/image/format.hpp: the plugin image file, byte for byte.
//
// A plugin image is one plugin's native code, position independent and without imports,
// as a flat file a host can check before it runs a single instruction of it:
//
//   [ image_header | image_segment x segment_count | image_reloc x reloc_count | memory ]
//
// `memory` is the image as it lies in memory from offset 0 (mem_file_size bytes; the rest
// up to mem_size is zero, the .bss). The host maps mem_size bytes writable, copies memory
// in, applies the relocations (each one "base + addend" stored at an offset: the only kind
// there is), then gives each segment its final protection, never writable and executable
// at once, and calls the entry function at `entry` (npa/image/abi.hpp).
//
// Every field of the header, the segment table, the relocations and the note is
// little-endian (npa::le16/le32/le64), whatever machine the code is for (`machine`, the ELF
// e_machine): a pack tool on any build machine writes it and a host of another machine
// reads its `machine` and refuses it by name. Only `memory` is in the code's own byte order
// (it is that machine's code and data), and so is each relocated 8-byte value the host
// stores into it. `digest` is SHA-512 of the whole file with `digest` and
// `signature` zeroed; `signature` is Ed25519 over `digest` (the host's part,
// adapters/image).
//
// Freestanding: this header is shared by the pack tool, the host's loader and the image.
#pragma once

#include <npa/endian.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::image {

/// "NPAI" in the file's first four bytes.
inline constexpr std::uint32_t image_magic = 0x4941504e;
/// The ABI of the image format and of the two tables in abi.hpp. A new major is not
/// understood by an older host; a new minor only appends (tables grow at the end).
inline constexpr std::uint16_t abi_major = 1;
/// 1: the header lists buffer layouts (a set); 2: the shell table offers a clock (now_ns).
inline constexpr std::uint16_t abi_minor = 2;
/// Segment offsets and sizes are multiples of this (the host refuses a larger page).
inline constexpr std::uint32_t image_page = 4096;
inline constexpr std::uint32_t max_segments = 8;
/// An image larger than this is refused before anything is mapped (a plugin is tens of KiB).
inline constexpr std::uint32_t max_image_bytes = 16u << 20;

/// The ELF machine number of the code this header is compiled for (0: none known).
inline constexpr std::uint16_t native_machine =
#if defined(__x86_64__)
    62; // EM_X86_64
#elif defined(__aarch64__)
    183; // EM_AARCH64
#elif defined(__s390x__)
    22; // EM_S390
#else
    0;
#endif

/// The packet buffer layout the image's code reads directly (one indirect call per burst
/// means no translation per packet). An image carries one instantiation of its plugin per
/// layout; a host names its own in the shell table and the image enters with that one.
enum class buffer_layout : std::uint32_t {
    packet_buffer = 1, ///< npa/buffer/packet_buffer.hpp (the sim, npa-linkd)
    rte_mbuf = 2,      ///< DPDK's struct rte_mbuf (npa/image/mbuf_layout.hpp; net_npa)
};
/// A layout's bit in image_header::buffer_layout (a packet_buffer-only image keeps the
/// value 1 it had when the field named one layout).
constexpr std::uint32_t layout_bit(buffer_layout l) noexcept {
    return 1u << (static_cast<std::uint32_t>(l) - 1);
}
inline constexpr std::uint32_t known_layouts =
    layout_bit(buffer_layout::packet_buffer) | layout_bit(buffer_layout::rte_mbuf);

/// Segment protections (image_segment::prot).
inline constexpr std::uint32_t prot_read = 1, prot_write = 2, prot_exec = 4;

/// Relocation kinds. Only `relative` is applied; `import` (a symbol the image wants from
/// outside) exists so that such an image is refused by name.
enum class reloc_kind : std::uint32_t {
    relative = 1, ///< *(u64*)(base + offset) = base + addend
    import = 2,   ///< refused: images import nothing
};

struct image_header {
    le32 magic;
    le16 abi_major;
    le16 abi_minor;
    le16 machine;       ///< ELF e_machine of the code
    le16 segment_count; ///< image_segment entries right after the header
    le32 header_size;   ///< sizeof(image_header)
    le32 file_size;     ///< bytes of the whole file
    le32 device_id;     ///< the device the plugin drives (abi.hpp, device ids)
    le32 buffer_layout; ///< layout_bit()s of the layouts the image carries (a set)
    le32 mem_size;      ///< bytes mapped, a multiple of image_page
    le32 mem_offset;    ///< file offset of the memory bytes
    le32 mem_file_size; ///< memory bytes in the file (the rest is zero)
    le32 reloc_offset;  ///< file offset of the relocations
    le32 reloc_count;
    le32 entry;                 ///< offset of the entry function in memory
    le32 reserved;              ///< zero
    char name[32];              ///< the plugin's name, NUL-terminated
    std::uint8_t digest[64];    ///< SHA-512 of the file, digest and signature zeroed
    std::uint8_t signature[64]; ///< Ed25519 over digest
};
static_assert(sizeof(image_header) == 216);
static_assert(offsetof(image_header, device_id) == 20);
static_assert(offsetof(image_header, entry) == 48);
static_assert(offsetof(image_header, name) == 56);
static_assert(offsetof(image_header, digest) == 88);
static_assert(offsetof(image_header, signature) == 152);

/// A run of pages with one protection: [offset, offset + size) of memory.
struct image_segment {
    le32 offset;
    le32 size;
    le32 prot;
    le32 reserved; ///< zero
};
static_assert(sizeof(image_segment) == 16);

struct image_reloc {
    le64 offset; ///< where in memory the 8-byte value is written
    le64 addend; ///< offset in memory it points to
    le32 kind;   ///< enum reloc_kind
    le32 symbol; ///< zero for relative
};
static_assert(sizeof(image_reloc) == 24);

/// The name of the entry function's symbol (abi.hpp's entry_fn; the pack tool looks it up).
inline constexpr const char* entry_symbol = "npa_image_entry";

/// What the image says about itself, in its ".npa_image" section, for the pack tool to
/// copy into the header (entry.hpp writes it; nothing reads it at run time).
struct image_note {
    le32 magic;
    le16 abi_major;
    le16 abi_minor;
    le32 device_id;
    le32 buffer_layout; ///< layout_bit()s (a set)
    char name[32];
};
static_assert(sizeof(image_note) == 48);

} // namespace npa::image
