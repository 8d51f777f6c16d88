package elfsym

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
)

// checkHeaders refuses, before debug/elf reads anything, a file whose
// headers claim tables larger than the file itself. debug/elf allocates
// the size a header claims (up to 10 MB at a time) before it finds the
// file too short, so a crafted 4 KB file with a large count or size field
// cost tens of milliseconds and megabytes per Open; with it, Open costs
// no more than the file's size. It also refuses a file that is not
// 64-bit little-endian x86-64 before debug/elf parses it.
//
// The tables checked are the ones debug/elf reads for Open and the
// symbol queries: program and section headers, and the symbol, string,
// dynamic and symbol version sections. No linker compresses those (only
// .debug_* sections are compressed), so a compressed one, whose
// decompressed size could be anything, is refused as well.
func checkHeaders(r io.ReaderAt, size int64, path string) error {
	var h [64]byte // Elf64_Ehdr
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("elfsym: %s: malformed ELF file: header: %w", path, err)
	}
	class, data := elf.Class(h[elf.EI_CLASS]), elf.Data(h[elf.EI_DATA])
	machine := elf.Machine(binary.LittleEndian.Uint16(h[18:]))
	if class != elf.ELFCLASS64 || data != elf.ELFDATA2LSB || machine != elf.EM_X86_64 {
		if data == elf.ELFDATA2MSB {
			machine = elf.Machine(binary.BigEndian.Uint16(h[18:]))
		}
		return fmt.Errorf("elfsym: %s: not an x86-64 ELF file (%v, %v, %v)", path, class, data, machine)
	}
	le := binary.LittleEndian
	phoff, shoff := le.Uint64(h[32:]), le.Uint64(h[40:])
	phentsize, phnum := uint64(le.Uint16(h[54:])), uint64(le.Uint16(h[56:]))
	shentsize, shnum := uint64(le.Uint16(h[58:])), uint64(le.Uint16(h[60:]))
	fits := func(what string, off, n uint64) error {
		if off > uint64(size) || n > uint64(size)-off {
			return fmt.Errorf("elfsym: %s: malformed ELF file: %s at offset %#x, %#x bytes, beyond the end of the file (%d bytes)",
				path, what, off, n, size)
		}
		return nil
	}
	// Both counts are 16-bit and the entry sizes too: the products
	// cannot overflow.
	if err := fits("program headers", phoff, phnum*phentsize); err != nil {
		return err
	}
	const shdrSize = 64 // Elf64_Shdr; debug/elf refuses smaller entries
	if shoff == 0 || shentsize < shdrSize {
		return nil // no section headers, or debug/elf refuses them
	}
	if shnum == 0 {
		// Extended numbering: the count is section 0's sh_size.
		var s0 [shdrSize]byte
		if err := fits("section header 0", shoff, shdrSize); err != nil {
			return err
		}
		if _, err := r.ReadAt(s0[:], int64(shoff)); err != nil {
			return fmt.Errorf("elfsym: %s: malformed ELF file: section header 0: %w", path, err)
		}
		shnum = le.Uint64(s0[32:])
		if shnum > uint64(size)/shentsize {
			return fits("section headers", shoff, uint64(size)+1) // too many for the file
		}
	}
	if err := fits("section headers", shoff, shnum*shentsize); err != nil {
		return err
	}
	// Within the file size: this allocation is bounded by it.
	shdrs := make([]byte, shnum*shentsize)
	if _, err := r.ReadAt(shdrs, int64(shoff)); err != nil {
		return fmt.Errorf("elfsym: %s: malformed ELF file: section headers: %w", path, err)
	}
	// debug/elf reads the first section of each type.
	seen := make(map[elf.SectionType]bool)
	for i := range shnum {
		sh := shdrs[i*shentsize:]
		typ := elf.SectionType(le.Uint32(sh[4:]))
		switch typ {
		case elf.SHT_SYMTAB, elf.SHT_DYNSYM, elf.SHT_STRTAB, elf.SHT_DYNAMIC,
			elf.SHT_GNU_VERSYM, elf.SHT_GNU_VERDEF, elf.SHT_GNU_VERNEED:
		default:
			continue
		}
		what := fmt.Sprintf("section %d (%v)", i, typ)
		if elf.SectionFlag(le.Uint64(sh[8:]))&elf.SHF_COMPRESSED != 0 {
			return fmt.Errorf("elfsym: %s: malformed ELF file: %s is compressed", path, what)
		}
		off, n := le.Uint64(sh[24:]), le.Uint64(sh[32:])
		if err := fits(what, off, n); err != nil {
			return err
		}
		if (typ == elf.SHT_GNU_VERDEF || typ == elf.SHT_GNU_VERNEED) && !seen[typ] {
			d := make([]byte, n)
			if _, err := r.ReadAt(d, int64(off)); err != nil {
				return fmt.Errorf("elfsym: %s: malformed ELF file: %s: %w", path, what, err)
			}
			if !versionChainsFit(d, typ == elf.SHT_GNU_VERDEF) {
				return fmt.Errorf("elfsym: %s: malformed ELF file: the version records of %s revisit one another", path, what)
			}
		}
		seen[typ] = true
	}
	return nil
}

// versionChainsFit walks the records of a version definition (verdef) or
// version needs (verneed) section the way debug/elf does and reports
// whether it visits no more records than the section can hold (8 bytes
// each, the smallest record). The linker writes disjoint records, so a
// real file always passes; a crafted one whose next-record offsets are 0
// or 1 would have debug/elf visit (and allocate a string for) the same
// bytes up to 65535 times per record.
func versionChainsFit(d []byte, verdef bool) bool {
	le := binary.LittleEndian
	budget := len(d) / 8
	entrySize, auxSize := 16, 16 // Elf64_Verneed, Elf64_Vernaux
	if verdef {
		entrySize, auxSize = 20, 8 // Elf64_Verdef, Elf64_Verdaux
	}
	for i := 0; i+entrySize <= len(d); {
		if budget--; budget < 0 {
			return false
		}
		var cnt, aux, next int
		if verdef {
			cnt, aux, next = int(le.Uint16(d[i+6:])), int(le.Uint32(d[i+12:])), int(le.Uint32(d[i+16:]))
		} else {
			cnt, aux, next = int(le.Uint16(d[i+2:])), int(le.Uint32(d[i+8:])), int(le.Uint32(d[i+12:]))
		}
		for c, j := 0, i+aux; c < cnt && j+auxSize <= len(d); c++ {
			if budget--; budget < 0 {
				return false
			}
			var vnext int
			if verdef {
				vnext = int(le.Uint32(d[j+4:]))
			} else {
				vnext = int(le.Uint32(d[j+12:]))
				if vnext == 0 {
					break // debug/elf stops a verneed's chain at 0
				}
			}
			j += vnext
		}
		if next == 0 {
			break
		}
		i += next
	}
	return true
}
