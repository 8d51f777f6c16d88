package elfsym

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Function bounds of stripped files come from the unwind information every
// x86-64 ELF file carries for its C/C++ code: .eh_frame holds one FDE per
// function (or per part of one) with its start address and length, and
// .eh_frame_hdr (PT_GNU_EH_FRAME) a table of (start, FDE address) sorted by
// start, made for binary search. References: the LSB "Exception Frames"
// chapter and the DWARF .debug_frame format it extends.

// DW_EH_PE_* pointer encodings: the low nibble is the format, bits 4-6
// what the value is relative to, bit 7 an indirection.
const (
	peAbsptr = 0x00
	peULEB   = 0x01
	peUdata2 = 0x02
	peUdata4 = 0x03
	peUdata8 = 0x04
	peSigned = 0x08
	peSLEB   = 0x09
	peSdata2 = 0x0a
	peSdata4 = 0x0b
	peSdata8 = 0x0c

	pePcrel   = 0x10
	peDatarel = 0x30
	peIndir   = 0x80
	peOmit    = 0xff
)

// Reads of unwind data are bounded: real CIEs and FDEs are a few dozen
// bytes, a whole .eh_frame_hdr or .eh_frame a few MiB.
const (
	maxEntryRead   = 512      // bytes of a CIE or FDE read to decode it
	maxSectionRead = 64 << 20 // bytes of .eh_frame_hdr or .eh_frame
)

var errNoTable = errors.New("no usable unwind table")

// ehEntry is a row of the table: the start address of an FDE's range, the
// end when already known (0 otherwise: decode the FDE), and the FDE's
// address.
type ehEntry struct {
	start, end, fde uint64
}

// ehCache holds the table of one File, built once on first use.
type ehCache struct {
	once    sync.Once
	entries []ehEntry // sorted by start
	rd      memReader // where the FDEs are read
}

// memReader reads unwind data at link-time virtual addresses. It returns
// at most n bytes, fewer at the end of the data, nil if addr is outside.
type memReader interface {
	read(addr uint64, n int) []byte
}

// fileMem reads through the PT_LOAD segments of a file.
type fileMem struct{ f *File }

func (m fileMem) read(addr uint64, n int) []byte {
	for _, s := range m.f.Segments {
		if addr < s.Vaddr || addr-s.Vaddr >= s.Filesz {
			continue
		}
		rest := s.Filesz - (addr - s.Vaddr)
		b := make([]byte, min(uint64(n), rest))
		got, _ := m.f.readFile(b, s.Offset+(addr-s.Vaddr))
		return b[:got]
	}
	return nil
}

// sectionMem reads from the bytes of a section loaded at base.
type sectionMem struct {
	base uint64
	data []byte
}

func (m sectionMem) read(addr uint64, n int) []byte {
	if addr < m.base || addr-m.base >= uint64(len(m.data)) {
		return nil
	}
	b := m.data[addr-m.base:]
	return b[:min(n, len(b))]
}

// lookup returns the bounds of the FDE containing vaddr.
func (c *ehCache) lookup(f *File, vaddr uint64) (start, end uint64, ok bool) {
	c.once.Do(func() { c.build(f) })
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].start > vaddr }) - 1
	if i < 0 {
		return 0, 0, false
	}
	e := c.entries[i]
	if e.end == 0 {
		var err error
		e.start, e.end, err = decodeFDE(c.rd, e.fde, nil)
		if err != nil {
			return 0, 0, false
		}
	}
	if vaddr < e.start || vaddr >= e.end {
		return 0, 0, false
	}
	return e.start, e.end, true
}

// build fills the table from .eh_frame_hdr, else by walking .eh_frame. A
// file without usable unwind data gets an empty table.
func (c *ehCache) build(f *File) {
	defer func() {
		if recover() != nil {
			c.entries, c.rd = nil, nil
		}
	}()
	if data, base, ok := f.ehFrameHdr(); ok {
		if entries, err := parseEHFrameHdr(data, base); err == nil && len(entries) > 0 {
			c.entries, c.rd = entries, fileMem{f}
			return
		}
	}
	sec := f.ef.Section(".eh_frame")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return
	}
	data := f.readSection(sec.Offset, sec.Size)
	m := sectionMem{base: sec.Addr, data: data}
	c.entries, c.rd = parseEHFrame(m), m
}

// ehFrameHdr returns the bytes and address of .eh_frame_hdr: from the
// PT_GNU_EH_FRAME program header (present even without section headers),
// else from the section.
func (f *File) ehFrameHdr() (data []byte, addr uint64, ok bool) {
	for _, p := range f.ef.Progs {
		if p.Type == elf.PT_GNU_EH_FRAME {
			return f.readSection(p.Off, p.Filesz), p.Vaddr, true
		}
	}
	if s := f.ef.Section(".eh_frame_hdr"); s != nil && s.Type != elf.SHT_NOBITS {
		return f.readSection(s.Offset, s.Size), s.Addr, true
	}
	return nil, 0, false
}

// readSection reads n bytes at file offset off, bounded by the file size
// and maxSectionRead; a short read returns what was read.
func (f *File) readSection(off, n uint64) []byte {
	if off >= uint64(f.size) {
		return nil
	}
	n = min(n, uint64(f.size)-off, maxSectionRead)
	b := make([]byte, n)
	got, _ := f.readFile(b, off)
	return b[:got]
}

// parseEHFrameHdr decodes the binary search table of .eh_frame_hdr (data,
// loaded at base): version 1, eh_frame_ptr_enc, fde_count_enc, table_enc,
// eh_frame_ptr, fde_count, then fde_count pairs (initial location, FDE
// address) in table_enc, relative to base for datarel.
func parseEHFrameHdr(data []byte, base uint64) ([]ehEntry, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf(".eh_frame_hdr: %d bytes: %w", len(data), errNoTable)
	}
	if data[0] != 1 {
		return nil, fmt.Errorf(".eh_frame_hdr: version %d: %w", data[0], errNoTable)
	}
	ptrEnc, cntEnc, tblEnc := data[1], data[2], data[3]
	pos := 4
	if ptrEnc != peOmit {
		_, n, err := readPointer(data, pos, ptrEnc, base+uint64(pos), base, true)
		if err != nil {
			return nil, fmt.Errorf(".eh_frame_hdr eh_frame_ptr: %w", err)
		}
		pos += n
	}
	if cntEnc == peOmit || tblEnc == peOmit {
		return nil, fmt.Errorf(".eh_frame_hdr without table: %w", errNoTable)
	}
	count, n, err := readPointer(data, pos, cntEnc, base+uint64(pos), base, true)
	if err != nil {
		return nil, fmt.Errorf(".eh_frame_hdr fde_count: %w", err)
	}
	pos += n
	size := fixedSize(tblEnc)
	if size == 0 {
		return nil, fmt.Errorf(".eh_frame_hdr table encoding %#x: %w", tblEnc, errNoTable)
	}
	// A truncated table keeps the rows that are there.
	count = min(count, uint64((len(data)-pos)/(2*size)))
	entries := make([]ehEntry, 0, count)
	for range count {
		loc, _, err := readPointer(data, pos, tblEnc, base+uint64(pos), base, true)
		if err != nil {
			return nil, fmt.Errorf(".eh_frame_hdr table: %w", err)
		}
		pos += size
		fde, _, err := readPointer(data, pos, tblEnc, base+uint64(pos), base, true)
		if err != nil {
			return nil, fmt.Errorf(".eh_frame_hdr table: %w", err)
		}
		pos += size
		entries = append(entries, ehEntry{start: loc, fde: fde})
	}
	if !sort.SliceIsSorted(entries, func(i, j int) bool { return entries[i].start < entries[j].start }) {
		sort.SliceStable(entries, func(i, j int) bool { return entries[i].start < entries[j].start })
	}
	return entries, nil
}

// parseEHFrame walks a whole .eh_frame section and returns the ranges of
// its FDEs sorted by start; entries that do not decode are skipped.
func parseEHFrame(m sectionMem) []ehEntry {
	var entries []ehEntry
	cies := map[uint64]byte{}
	data := m.data
	for pos := uint64(0); pos+4 <= uint64(len(data)); {
		length := uint64(binary.LittleEndian.Uint32(data[pos:]))
		hdr := uint64(4)
		if length == 0 {
			break // terminator
		}
		if length == 0xffffffff {
			if pos+12 > uint64(len(data)) {
				break
			}
			length, hdr = binary.LittleEndian.Uint64(data[pos+4:]), 12
		}
		if length > uint64(len(data))-pos-hdr {
			break
		}
		start, end, err := decodeFDE(m, m.base+pos, cies)
		if err == nil && end > start {
			entries = append(entries, ehEntry{start: start, end: end, fde: m.base + pos})
		}
		pos += hdr + length
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].start < entries[j].start })
	return entries
}

// entryHeader decodes the length and CIE id / CIE pointer fields common
// to CIEs and FDEs at addr. body holds the bytes after the id field
// (at most maxEntryRead), bodyAddr is their address, idAddr the address
// of the id field.
func entryHeader(m memReader, addr uint64) (id, idAddr uint64, body []byte, bodyAddr uint64, err error) {
	b := m.read(addr, 12)
	if len(b) < 4 {
		return 0, 0, nil, 0, fmt.Errorf("unwind entry at %#x: truncated", addr)
	}
	length, hdr, idSize := uint64(binary.LittleEndian.Uint32(b)), uint64(4), uint64(4)
	switch length {
	case 0:
		return 0, 0, nil, 0, fmt.Errorf("unwind entry at %#x: terminator", addr)
	case 0xffffffff:
		if len(b) < 12 {
			return 0, 0, nil, 0, fmt.Errorf("unwind entry at %#x: truncated", addr)
		}
		length, hdr, idSize = binary.LittleEndian.Uint64(b[4:]), 12, 8
	}
	if length < idSize {
		return 0, 0, nil, 0, fmt.Errorf("unwind entry at %#x: length %d", addr, length)
	}
	idAddr = addr + hdr
	rest := m.read(idAddr, int(min(length, maxEntryRead)))
	if uint64(len(rest)) < idSize {
		return 0, 0, nil, 0, fmt.Errorf("unwind entry at %#x: truncated", addr)
	}
	if idSize == 4 {
		id = uint64(binary.LittleEndian.Uint32(rest))
	} else {
		id = binary.LittleEndian.Uint64(rest)
	}
	return id, idAddr, rest[idSize:], idAddr + idSize, nil
}

// decodeFDE returns [pc_begin, pc_begin+pc_range) of the FDE at addr. cies
// caches the FDE pointer encoding per CIE address (may be nil).
func decodeFDE(m memReader, addr uint64, cies map[uint64]byte) (start, end uint64, err error) {
	id, idAddr, body, bodyAddr, err := entryHeader(m, addr)
	if err != nil {
		return 0, 0, err
	}
	if id == 0 {
		return 0, 0, fmt.Errorf("unwind entry at %#x: a CIE, not an FDE", addr)
	}
	// In .eh_frame the CIE pointer is the distance back from its own field.
	cieAddr := idAddr - id
	enc, cached := cies[cieAddr]
	if !cached {
		if enc, err = decodeCIE(m, cieAddr); err != nil {
			return 0, 0, fmt.Errorf("FDE at %#x: %w", addr, err)
		}
		if cies != nil {
			cies[cieAddr] = enc
		}
	}
	start, n, err := readPointer(body, 0, enc, bodyAddr, 0, false)
	if err != nil {
		return 0, 0, fmt.Errorf("FDE at %#x pc_begin: %w", addr, err)
	}
	// pc_range has the format of the encoding but is an absolute length.
	size, _, err := readPointer(body, n, enc&0x0f, 0, 0, false)
	if err != nil {
		return 0, 0, fmt.Errorf("FDE at %#x pc_range: %w", addr, err)
	}
	return start, addSat(start, size), nil
}

// decodeCIE returns the FDE pointer encoding of the CIE at addr: the
// argument of its 'R' augmentation, absptr without one.
func decodeCIE(m memReader, addr uint64) (byte, error) {
	id, _, b, _, err := entryHeader(m, addr)
	if err != nil {
		return 0, err
	}
	if id != 0 {
		return 0, fmt.Errorf("CIE at %#x: id %#x, not a CIE", addr, id)
	}
	bad := func(what string) (byte, error) {
		return 0, fmt.Errorf("CIE at %#x: %s", addr, what)
	}
	if len(b) < 1 {
		return bad("truncated")
	}
	version := b[0]
	if version != 1 && version != 3 && version != 4 {
		return bad(fmt.Sprintf("version %d", version))
	}
	pos := 1
	augEnd := pos
	for augEnd < len(b) && b[augEnd] != 0 {
		augEnd++
	}
	if augEnd >= len(b) {
		return bad("unterminated augmentation")
	}
	aug := string(b[pos:augEnd])
	pos = augEnd + 1
	if len(aug) >= 2 && aug[:2] == "eh" {
		pos += 8 // GCC 2.x eh_data pointer
	}
	if version == 4 {
		pos += 2 // address_size, segment_selector_size
	}
	var n int
	if _, n, err = readULEB(b, pos); err != nil { // code alignment
		return bad("code alignment")
	}
	pos += n
	if _, n, err = readULEB(b, pos); err != nil { // data alignment (SLEB; same length)
		return bad("data alignment")
	}
	pos += n
	if version == 1 {
		pos++ // return address register
	} else {
		if _, n, err = readULEB(b, pos); err != nil {
			return bad("return address register")
		}
		pos += n
	}
	if len(aug) == 0 || aug[0] != 'z' {
		return peAbsptr, nil
	}
	if _, n, err = readULEB(b, pos); err != nil { // augmentation data length
		return bad("augmentation length")
	}
	pos += n
	for _, c := range aug[1:] {
		switch c {
		case 'R':
			if pos >= len(b) {
				return bad("truncated augmentation data")
			}
			return b[pos], nil
		case 'L':
			pos++
		case 'P':
			if pos >= len(b) {
				return bad("truncated augmentation data")
			}
			penc := b[pos]
			pos++
			if penc&0x70 == 0x50 { // DW_EH_PE_aligned
				return bad("aligned personality encoding")
			}
			if _, n, err = readPointer(b, pos, penc&0x0f, 0, 0, false); err != nil {
				return bad("personality pointer")
			}
			pos += n
		case 'S', 'B', 'G':
		default:
			// The data of an unknown letter has an unknown size.
			return bad(fmt.Sprintf("augmentation %q", aug))
		}
	}
	return peAbsptr, nil
}

// fixedSize returns the size in bytes of a fixed-size encoding, 0 for the
// variable ones (LEB128) and omit.
func fixedSize(enc byte) int {
	if enc == peOmit {
		return 0
	}
	switch enc & 0x0f {
	case peUdata2, peSdata2:
		return 2
	case peUdata4, peSdata4:
		return 4
	case peAbsptr, peUdata8, peSdata8, peSigned:
		return 8
	}
	return 0
}

// readPointer decodes a DW_EH_PE_* encoded value at b[pos:]. fieldAddr is
// the address of b[pos] (for pcrel), dataBase that of the section for
// datarel (only if hasDataBase). It returns the value and its size in
// bytes.
func readPointer(b []byte, pos int, enc byte, fieldAddr, dataBase uint64, hasDataBase bool) (uint64, int, error) {
	if enc == peOmit {
		return 0, 0, errors.New("omitted value")
	}
	if enc&peIndir != 0 {
		return 0, 0, fmt.Errorf("indirect encoding %#x", enc)
	}
	if pos < 0 || pos > len(b) {
		return 0, 0, errors.New("truncated")
	}
	var v uint64
	var n int
	var err error
	switch format := enc & 0x0f; format {
	case peULEB:
		v, n, err = readULEB(b, pos)
	case peSLEB:
		v, n, err = readSLEB(b, pos)
	default:
		n = fixedSize(format)
		if n == 0 {
			return 0, 0, fmt.Errorf("unknown encoding %#x", enc)
		}
		if len(b)-pos < n {
			return 0, 0, errors.New("truncated")
		}
		p := b[pos:]
		switch format {
		case peUdata2:
			v = uint64(binary.LittleEndian.Uint16(p))
		case peSdata2:
			v = uint64(int64(int16(binary.LittleEndian.Uint16(p))))
		case peUdata4:
			v = uint64(binary.LittleEndian.Uint32(p))
		case peSdata4:
			v = uint64(int64(int32(binary.LittleEndian.Uint32(p))))
		default:
			v = binary.LittleEndian.Uint64(p)
		}
	}
	if err != nil {
		return 0, 0, err
	}
	switch enc & 0x70 {
	case 0:
	case pePcrel:
		v += fieldAddr
	case peDatarel:
		if !hasDataBase {
			return 0, 0, fmt.Errorf("datarel encoding %#x without a data base", enc)
		}
		v += dataBase
	default:
		return 0, 0, fmt.Errorf("unsupported encoding %#x", enc)
	}
	return v, n, nil
}

// readULEB decodes an unsigned LEB128 value (at most 10 bytes).
func readULEB(b []byte, pos int) (uint64, int, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if pos+i >= len(b) {
			return 0, 0, errors.New("truncated LEB128")
		}
		c := b[pos+i]
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 too long")
}

// readSLEB decodes a signed LEB128 value (at most 10 bytes).
func readSLEB(b []byte, pos int) (uint64, int, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if pos+i >= len(b) {
			return 0, 0, errors.New("truncated LEB128")
		}
		c := b[pos+i]
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if shift := 7 * (i + 1); shift < 64 && c&0x40 != 0 {
				v |= ^uint64(0) << shift
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 too long")
}
