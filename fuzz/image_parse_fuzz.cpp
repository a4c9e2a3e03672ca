// fuzz/image_parse_fuzz.cpp: plugin image bytes from an untrusted source (a hypervisor, a
// file) through the loader's structural checks and relocation (npa/image/parse.hpp).
//
// The input is the whole image file. What parse_image accepts is laid out and relocated
// into a buffer of exactly the image's size, as the loader does into its mapping, so a
// check that let an offset, a size or a relocation past the image is an ASan report here.
// Accepted images must also keep the rules the loader relies on: no segment writable and
// executable, the entry in an executable segment. (The digest and the signature are
// libsodium's: a fuzzed image never gets past them, so they are not fuzzed here.)
#include <npa/image/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
    npa::image::image_view v;
    if (!npa::image::parse_image(file, v).ok()) {
        return 0;
    }
    for (const npa::image::image_segment& s : v.segment_list()) {
        if ((s.prot & npa::image::prot_write) != 0 && (s.prot & npa::image::prot_exec) != 0) {
            std::abort(); // W^X broken
        }
    }
    const npa::image::image_segment* e = v.segment_at(v.header.entry);
    if (e == nullptr || (e->prot & npa::image::prot_exec) == 0) {
        std::abort(); // the entry would not be code
    }
    std::vector<std::byte> mem(v.header.mem_size);
    npa::image::relocate_image(v, mem, 0x7f0000000000);
    return 0;
}
