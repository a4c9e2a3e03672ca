// npa-pack-image: a plugin's shared object (built by npa_add_plugin_image) as a signed
// plugin image (npa/image/format.hpp).
//
//   npa-pack-image <plugin.so> <out.npai> <key-seed-file>
//
// Reads the ELF file and refuses, naming the reason, anything the loader would not run
// as is: an undefined symbol (the image would import it), a needed library, an
// interpreter, thread-local storage, constructors or destructors (.init_array, DT_INIT
// ...), a relocation other than the machine's RELATIVE one, a segment both writable and
// executable. It reads ELF of either byte order (an s390x plugin packs on x86-64). Then it
// writes header, segment table and relocations (little-endian, as the format says) and the
// memory bytes (the target's code and data, as they are), signs them with the Ed25519 key
// made from the seed (deterministic: same input, same file) and prints the plugin's name
// and the image's SHA-512 digest.
#include <npa/endian.hpp>
#include <npa/image/format.hpp>
#include <npa/image/image_files.hpp>
#include <npa/image/signing.hpp>

#include <elf.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using npa::image::image_page;

struct refusal {
    std::string why;
};

std::vector<std::byte> read_or_refuse(const char* path) {
    auto b = npa::image::read_file(path);
    if (!b) {
        throw refusal{std::string("cannot read ") + path};
    }
    return std::move(*b);
}

// ELF fields are in the file's byte order (EI_DATA), which is the target's: an s390x
// plugin is big-endian however the tool's own machine stores integers. Each structure is
// read as bytes and its fields turned to this machine's order where the two differ.
template <class T>
void to_native(T& v, bool swap) {
    if (swap) {
        using U = std::make_unsigned_t<T>;
        v = static_cast<T>(npa::byteswap(static_cast<U>(v)));
    }
}
template <class... Fields>
void fields_to_native(bool swap, Fields&... f) {
    (to_native(f, swap), ...);
}
void to_native(Elf64_Ehdr& e, bool s) {
    fields_to_native(s, e.e_type, e.e_machine, e.e_version, e.e_entry, e.e_phoff, e.e_shoff,
                     e.e_flags, e.e_ehsize, e.e_phentsize, e.e_phnum, e.e_shentsize, e.e_shnum,
                     e.e_shstrndx);
}
void to_native(Elf64_Phdr& p, bool s) {
    fields_to_native(s, p.p_type, p.p_flags, p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz,
                     p.p_memsz, p.p_align);
}
void to_native(Elf64_Shdr& h, bool s) {
    fields_to_native(s, h.sh_name, h.sh_type, h.sh_flags, h.sh_addr, h.sh_offset, h.sh_size,
                     h.sh_link, h.sh_info, h.sh_addralign, h.sh_entsize);
}
void to_native(Elf64_Dyn& d, bool s) { fields_to_native(s, d.d_tag, d.d_un.d_val); }
void to_native(Elf64_Rela& r, bool s) { fields_to_native(s, r.r_offset, r.r_info, r.r_addend); }
void to_native(Elf64_Sym& y, bool s) {
    fields_to_native(s, y.st_name, y.st_shndx, y.st_value, y.st_size);
}

template <class T>
T read_at(const std::vector<std::byte>& f, std::uint64_t off, bool swap) {
    if (off > f.size() || sizeof(T) > f.size() - off) {
        throw refusal{"ELF file truncated"};
    }
    T v;
    std::memcpy(&v, f.data() + off, sizeof(T));
    if constexpr (!std::is_integral_v<T> && !std::is_same_v<T, npa::image::image_note>) {
        to_native(v, swap);
    }
    return v;
}

// The machines whose RELATIVE relocation the loader applies ("base + addend" into an
// 8-byte word: R_X86_64_RELATIVE, R_AARCH64_RELATIVE, R_390_RELATIVE) and their byte order.
struct machine_rules {
    std::uint32_t relative;
    unsigned char data; // EI_DATA
};
machine_rules rules_for(std::uint16_t machine) {
    switch (machine) {
    case EM_X86_64: return {R_X86_64_RELATIVE, ELFDATA2LSB};
    case EM_AARCH64: return {R_AARCH64_RELATIVE, ELFDATA2LSB};
    case EM_S390: return {R_390_RELATIVE, ELFDATA2MSB};
    default:
        throw refusal{
            "no relocation rules for this ELF machine (x86-64, arm64 and s390x have them)"};
    }
}

std::uint32_t page_down(std::uint64_t v) {
    return static_cast<std::uint32_t>(v / image_page * image_page);
}
std::uint32_t page_up(std::uint64_t v) {
    return static_cast<std::uint32_t>((v + image_page - 1) / image_page * image_page);
}

struct elf_so {
    const std::vector<std::byte>& f;
    Elf64_Ehdr eh{};
    std::vector<Elf64_Phdr> ph;
    std::vector<Elf64_Shdr> sh;

    bool swap = false; // the file's byte order is not this machine's

    explicit elf_so(const std::vector<std::byte>& file) : f(file) {
        eh = read_at<Elf64_Ehdr>(f, 0, false);
        if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) {
            throw refusal{"not a 64-bit ELF file"};
        }
        const unsigned char data = eh.e_ident[EI_DATA];
        if (data != ELFDATA2LSB && data != ELFDATA2MSB) {
            throw refusal{"unknown ELF byte order"};
        }
        const bool little = std::endian::native == std::endian::little;
        swap = (data == ELFDATA2LSB) != little;
        to_native(eh, swap);
        if (rules_for(eh.e_machine).data != data) {
            throw refusal{"ELF byte order is not its machine's"};
        }
        if (eh.e_type != ET_DYN) {
            throw refusal{"not a shared object (link the plugin with -shared)"};
        }
        for (unsigned i = 0; i < eh.e_phnum; ++i) {
            ph.push_back(
                read_at<Elf64_Phdr>(f, eh.e_phoff + std::uint64_t{i} * sizeof(Elf64_Phdr), swap));
        }
        for (unsigned i = 0; i < eh.e_shnum; ++i) {
            sh.push_back(
                read_at<Elf64_Shdr>(f, eh.e_shoff + std::uint64_t{i} * sizeof(Elf64_Shdr), swap));
        }
    }
    [[nodiscard]] std::string str(std::uint32_t strtab_sec, std::uint32_t off) const {
        const Elf64_Shdr& s = sh.at(strtab_sec);
        std::string r;
        for (std::uint64_t i = s.sh_offset + off; i < f.size(); ++i) {
            const char c = static_cast<char>(f[i]);
            if (c == '\0') {
                break;
            }
            r += c;
        }
        return r;
    }
    [[nodiscard]] std::string section_name(const Elf64_Shdr& s) const {
        return str(eh.e_shstrndx, s.sh_name);
    }
};

struct packed {
    npa::image::image_header h{};
    std::vector<npa::image::image_segment> segs;
    std::vector<npa::image::image_reloc> relocs;
    std::vector<std::byte> mem;
};

// Segments: every PT_LOAD in whole pages with its protection; the RELRO pages read-only.
void lay_out(const elf_so& e, packed& p) {
    std::uint64_t end = 0;
    const Elf64_Phdr* relro = nullptr;
    for (const Elf64_Phdr& ph : e.ph) {
        if (ph.p_type == PT_INTERP) {
            throw refusal{"it has an interpreter (link with -nostdlib -shared)"};
        }
        if (ph.p_type == PT_TLS) {
            throw refusal{"it has thread-local storage (images have no runtime for it)"};
        }
        if (ph.p_type == PT_GNU_RELRO) {
            relro = &ph;
        }
        if (ph.p_type != PT_LOAD) {
            continue;
        }
        if ((ph.p_flags & PF_W) != 0 && (ph.p_flags & PF_X) != 0) {
            throw refusal{"a segment is both writable and executable"};
        }
        const std::uint32_t prot = ((ph.p_flags & PF_R) != 0 ? npa::image::prot_read : 0) |
                                   ((ph.p_flags & PF_W) != 0 ? npa::image::prot_write : 0) |
                                   ((ph.p_flags & PF_X) != 0 ? npa::image::prot_exec : 0);
        npa::image::image_segment s{page_down(ph.p_vaddr), 0, prot, 0};
        s.size = page_up(ph.p_vaddr + ph.p_memsz) - s.offset;
        if (!p.segs.empty() && s.offset < p.segs.back().offset + p.segs.back().size) {
            throw refusal{"two segments share a page (link with -z separate-code)"};
        }
        p.segs.push_back(s);
        end = std::max<std::uint64_t>(end, ph.p_vaddr + ph.p_memsz);
        if (ph.p_vaddr + ph.p_filesz > p.mem.size()) {
            p.mem.resize(ph.p_vaddr + ph.p_filesz);
        }
        if (ph.p_offset + ph.p_filesz > e.f.size()) {
            throw refusal{"ELF file truncated"};
        }
        std::memcpy(p.mem.data() + ph.p_vaddr, e.f.data() + ph.p_offset, ph.p_filesz);
    }
    if (p.segs.empty() || end > npa::image::max_image_bytes) {
        throw refusal{"no loadable segment, or larger than an image may be"};
    }
    p.h.mem_size = page_up(end);
    // RELRO: whole pages at the start of a writable segment become read-only after relocation.
    if (relro != nullptr) {
        const std::uint32_t r0 = page_down(relro->p_vaddr),
                            r1 = page_down(relro->p_vaddr + relro->p_memsz);
        for (std::size_t i = 0; i < p.segs.size(); ++i) {
            npa::image::image_segment& s = p.segs[i];
            if ((s.prot & npa::image::prot_write) != 0 && s.offset == r0 && r1 > r0) {
                const std::uint32_t ro = std::min(r1 - r0, s.size.get());
                npa::image::image_segment rw{s.offset + ro, s.size - ro, s.prot, 0};
                s.size = ro;
                s.prot = npa::image::prot_read;
                if (rw.size != 0) {
                    p.segs.insert(p.segs.begin() + static_cast<std::ptrdiff_t>(i) + 1, rw);
                }
                break;
            }
        }
    }
    if (p.segs.size() > npa::image::max_segments) {
        throw refusal{"more segments than an image may have"};
    }
}

// The dynamic section: no libraries, no constructors; where the relocations are.
void read_dynamic(const elf_so& e, packed& p) {
    std::uint64_t rela = 0, relasz = 0, jmprel = 0, pltrelsz = 0;
    for (const Elf64_Phdr& ph : e.ph) {
        if (ph.p_type != PT_DYNAMIC) {
            continue;
        }
        for (std::uint64_t off = ph.p_offset; off + sizeof(Elf64_Dyn) <= ph.p_offset + ph.p_filesz;
             off += sizeof(Elf64_Dyn)) {
            const auto d = read_at<Elf64_Dyn>(e.f, off, e.swap);
            switch (d.d_tag) {
            case DT_NEEDED: throw refusal{"it needs a shared library (images import nothing)"};
            case DT_INIT:
            case DT_FINI:
            case DT_PREINIT_ARRAY: throw refusal{"it has constructors or destructors"};
            case DT_INIT_ARRAYSZ:
            case DT_FINI_ARRAYSZ:
                if (d.d_un.d_val != 0) {
                    throw refusal{"it has constructors or destructors (.init_array/.fini_array)"};
                }
                break;
            case DT_TEXTREL: throw refusal{"it relocates its code (text relocations)"};
            case DT_REL:
                throw refusal{"it has REL relocations (the loader applies RELA RELATIVE only)"};
            case DT_RELA: rela = d.d_un.d_ptr; break;
            case DT_RELASZ: relasz = d.d_un.d_val; break;
            case DT_JMPREL: jmprel = d.d_un.d_ptr; break;
            case DT_PLTRELSZ: pltrelsz = d.d_un.d_val; break;
            default: break;
            }
            if (d.d_tag == DT_NULL) {
                break;
            }
        }
    }
    // Relocation tables are addressed by vaddr: in a shared object's first segment, the
    // file offset equals the vaddr (checked through the memory copy).
    const std::uint32_t relative = rules_for(e.eh.e_machine).relative;
    auto take = [&](std::uint64_t at, std::uint64_t size) {
        for (std::uint64_t off = at; off + sizeof(Elf64_Rela) <= at + size;
             off += sizeof(Elf64_Rela)) {
            if (off + sizeof(Elf64_Rela) > p.mem.size()) {
                throw refusal{"relocation table outside the loaded image"};
            }
            Elf64_Rela r;
            std::memcpy(&r, p.mem.data() + off, sizeof(r));
            to_native(r, e.swap);
            if (ELF64_R_TYPE(r.r_info) != relative || ELF64_R_SYM(r.r_info) != 0) {
                throw refusal{"a relocation other than RELATIVE (type " +
                              std::to_string(ELF64_R_TYPE(r.r_info)) + ")"};
            }
            p.relocs.push_back({r.r_offset, static_cast<std::uint64_t>(r.r_addend),
                                static_cast<std::uint32_t>(npa::image::reloc_kind::relative), 0});
        }
    };
    take(rela, relasz);
    take(jmprel, pltrelsz);
}

// Symbols and sections: nothing undefined; the entry; the note; no constructor sections.
void read_sections(const elf_so& e, packed& p, bool& have_entry, bool& have_note) {
    for (const Elf64_Shdr& s : e.sh) {
        const std::string name = e.section_name(s);
        if ((name == ".init_array" || name == ".fini_array" || name == ".ctors" ||
             name == ".dtors") &&
            s.sh_size != 0) {
            throw refusal{"it has constructors or destructors (" + name + ")"};
        }
        if (name == ".npa_image") {
            const auto n =
                read_at<npa::image::image_note>(e.f, s.sh_offset, e.swap); // little-endian by type
            if (s.sh_size != sizeof(n) || n.magic != npa::image::image_magic) {
                throw refusal{"its .npa_image note is damaged"};
            }
            p.h.abi_major = n.abi_major;
            p.h.abi_minor = n.abi_minor;
            p.h.device_id = n.device_id;
            p.h.buffer_layout = n.buffer_layout;
            std::memcpy(p.h.name, n.name, sizeof(p.h.name));
            p.h.name[sizeof(p.h.name) - 1] = '\0';
            have_note = true;
        }
        if (s.sh_type != SHT_DYNSYM && s.sh_type != SHT_SYMTAB) {
            continue;
        }
        for (std::uint64_t off = s.sh_offset + sizeof(Elf64_Sym);
             off + sizeof(Elf64_Sym) <= s.sh_offset + s.sh_size; off += sizeof(Elf64_Sym)) {
            const auto sym = read_at<Elf64_Sym>(e.f, off, e.swap);
            const std::string sname = e.str(s.sh_link, sym.st_name);
            if (sym.st_shndx == SHN_UNDEF && !sname.empty()) {
                throw refusal{"it imports the symbol " + sname + " (images import nothing)"};
            }
            if (s.sh_type == SHT_DYNSYM && sname == npa::image::entry_symbol) {
                p.h.entry = static_cast<std::uint32_t>(sym.st_value);
                have_entry = true;
            }
        }
    }
}

std::vector<std::byte> pack(const std::vector<std::byte>& so) {
    const elf_so e(so);
    packed p;
    lay_out(e, p);
    bool have_entry = false, have_note = false;
    read_sections(e, p, have_entry, have_note); // imports named before their relocations
    read_dynamic(e, p);
    if (!have_entry || !have_note) {
        throw refusal{"no npa_image_entry or no .npa_image note (use NPA_PLUGIN_IMAGE)"};
    }
    npa::image::image_header& h = p.h;
    h.magic = npa::image::image_magic;
    h.machine = e.eh.e_machine;
    h.segment_count = static_cast<std::uint16_t>(p.segs.size());
    h.header_size = sizeof(h);
    h.reloc_offset = static_cast<std::uint32_t>(sizeof(h) + p.segs.size() * sizeof(p.segs[0]));
    h.reloc_count = static_cast<std::uint32_t>(p.relocs.size());
    h.mem_offset = h.reloc_offset +
                   h.reloc_count * static_cast<std::uint32_t>(sizeof(npa::image::image_reloc));
    h.mem_file_size = static_cast<std::uint32_t>(p.mem.size());
    h.file_size = h.mem_offset + h.mem_file_size;
    std::vector<std::byte> out(h.file_size);
    std::memcpy(out.data(), &h, sizeof(h));
    std::memcpy(out.data() + sizeof(h), p.segs.data(), p.segs.size() * sizeof(p.segs[0]));
    std::memcpy(out.data() + h.reloc_offset, p.relocs.data(),
                p.relocs.size() * sizeof(p.relocs[0]));
    std::memcpy(out.data() + h.mem_offset, p.mem.data(), p.mem.size());
    return out;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: npa-pack-image <plugin.so> <out.npai> <key-seed-file>\n");
        return 2;
    }
    try {
        std::vector<std::byte> img = pack(read_or_refuse(argv[1]));
        const auto seed = npa::image::read_seed(argv[3]);
        if (!seed || !npa::image::sign_image(img, *seed)) {
            throw refusal{std::string("cannot sign with the seed in ") + argv[3]};
        }
        std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(img.data()),
                  static_cast<std::streamsize>(img.size()));
        if (!out) {
            throw refusal{std::string("cannot write ") + argv[2]};
        }
        npa::image::image_header h;
        std::memcpy(&h, img.data(), sizeof(h));
        char hex[2 * sizeof(h.digest) + 1];
        sodium_bin2hex(hex, sizeof(hex), h.digest, sizeof(h.digest));
        std::printf("npa-pack-image: %s %s sha512 %s\n", argv[2], h.name, hex);
        return 0;
    } catch (const refusal& r) {
        std::fprintf(stderr, "npa-pack-image: %s: refused: %s\n", argv[1], r.why.c_str());
        std::remove(argv[2]);
        return 1;
    }
}
