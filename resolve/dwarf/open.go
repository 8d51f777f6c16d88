// Package dwarf answers, from a file's DWARF debug information, what a
// name means at an address of it: a variable path as the fetch-arg tree
// both of ptprobe's backends execute, the statement addresses of a source
// line, the type of a function's result, the offset of a Go goroutine's
// id, the frame rules that unwind a stack (docs/DESIGN.md §10).
//
// It reads DWARF through delve's pkg/dwarf packages (godwarf, reader,
// loclist, line, frame, op, regnum), not through delve's pkg/proc: a
// probe needs a few names of one file, and pkg/proc's BinaryInfo loads
// everything of every image eagerly (docs/DESIGN.md §10 has the figures).
//
// dwarf imports arch, elfsym and uprobe, and nothing else of this module.
package dwarf

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/godwarf"
	"github.com/go-delve/delve/pkg/dwarf/line"
	"github.com/go-delve/delve/pkg/dwarf/loclist"
	"github.com/go-delve/delve/pkg/dwarf/reader"
)

// ErrNoDWARF is the error of a file without debug information, wrapped
// with the places that were looked in.
var ErrNoDWARF = errors.New("no DWARF debug information")

// ErrSplitDWARF is the error of a file whose DWARF is split into .dwo
// files (gcc -gsplit-dwarf), which ptprobe does not read.
var ErrSplitDWARF = errors.New("split DWARF (.dwo) is not supported")

// Options say where separate debug files are. Nil Options are the
// defaults.
type Options struct {
	// DebugDirs are the roots of separate debug files, as gdb's
	// debug-file-directory: ROOT/.build-id/xx/yyyy.debug and
	// ROOT/DIR/DEBUGLINK. Nil: /usr/lib/debug, where Debian's -dbg
	// packages put them.
	DebugDirs []string
}

// Data is the debug information of one ELF file. It is not safe for
// concurrent use.
type Data struct {
	// Path is the file described, DebugPath the file the DWARF was read
	// from (Path itself, or its separate debug file).
	Path, DebugPath string

	exe      *elf.File // Path: program headers, .eh_frame
	dbg      *elf.File // DebugPath (== exe when the DWARF is in the file)
	dw       *dwarf.Data
	sections map[string][]byte
	units    []unit
	funcs    []*Func // by Low
	byName   map[string][]*Func
	loc2     *loclist.Dwarf2Reader
	loc5     *loclist.Dwarf5Reader
	addr     *godwarf.DebugAddrSection
	lineSec  []byte
	lineStr  []byte
	types    map[dwarf.Offset]godwarf.Type
	cfi      *CFI
	// gType is the DIE of runtime.g, once a unit with it is indexed.
	gType      dwarf.Offset
	allIndexed bool
	goid       int64  // offset of runtime.g.goid; -1: not looked up, -2: none
	maxLen     uint64 // of the longest function
	// trees are the DIE trees Inlines loaded, by function.
	trees map[dwarf.Offset]*inlineTree
	// rows reads the line table's rows (lastRow).
	rows *dwarf.Data
	// inlines are the answers of Inlines, by address.
	inlines map[uint64]inlinesAt
}

type inlineTree struct {
	t   *godwarf.Tree
	err error
}

// unit is a compile unit.
type unit struct {
	start   dwarf.Offset // of its header
	version int
	entry   *dwarf.Entry
	low     uint64
	lines   *line.DebugLineInfo
	noLines bool
	ranges  [][2]uint64
	indexed bool
}

// Func is a function with code: a DW_TAG_subprogram with addresses.
type Func struct {
	Name      string // as the DWARF names it: "work", "main.(*T).Method"
	Low, High uint64 // [Low, High), link-time addresses of its first range
	off       dwarf.Offset
	unit      int // index in Data.units
}

// Open reads the debug information of the ELF file at path: in the file,
// else in /usr/lib/debug/.build-id/xx/yyyy.debug for its build-id, else
// where its .gnu_debuglink names. A file without any is an error wrapping
// ErrNoDWARF that names the paths looked at.
func Open(path string, opts *Options) (*Data, error) {
	if opts == nil {
		opts = &Options{}
	}
	dirs := opts.DebugDirs
	if dirs == nil {
		dirs = []string{"/usr/lib/debug"}
	}
	exe, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("debug information of %s: %w", path, err)
	}
	d := &Data{Path: path, DebugPath: path, exe: exe, dbg: exe, goid: -1, types: make(map[dwarf.Offset]godwarf.Type)}
	if exe.Section(".debug_info") == nil {
		dbgPath, looked := findDebugFile(path, exe, dirs)
		if dbgPath == "" {
			exe.Close()
			return nil, fmt.Errorf("%s: %w (looked in the file and at %s)", path, ErrNoDWARF, strings.Join(looked, ", "))
		}
		dbg, err := elf.Open(dbgPath)
		if err != nil {
			exe.Close()
			return nil, fmt.Errorf("debug file of %s: %w", path, err)
		}
		d.dbg, d.DebugPath = dbg, dbgPath
	}
	if err := d.load(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the files.
func (d *Data) Close() error {
	if d.dbg != d.exe {
		d.dbg.Close()
	}
	return d.exe.Close()
}

// findDebugFile returns the separate debug file of exe, and the paths it
// looked at.
func findDebugFile(path string, exe *elf.File, dirs []string) (string, []string) {
	var looked []string
	if id := buildID(exe); len(id) > 1 {
		hex := fmt.Sprintf("%x", id)
		for _, root := range dirs {
			p := filepath.Join(root, ".build-id", hex[:2], hex[2:]+".debug")
			looked = append(looked, p)
			if fileExists(p) {
				return p, looked
			}
		}
	}
	if s := exe.Section(".gnu_debuglink"); s != nil {
		if b, err := s.Data(); err == nil {
			name := string(b)
			if i := strings.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			dir := filepath.Dir(path)
			if abs, err := filepath.Abs(dir); err == nil {
				dir = abs
			}
			cands := []string{filepath.Join(dir, name), filepath.Join(dir, ".debug", name)}
			for _, root := range dirs {
				cands = append(cands, filepath.Join(root, dir, name))
			}
			for _, p := range cands {
				if p == path {
					continue
				}
				looked = append(looked, p)
				if fileExists(p) {
					return p, looked
				}
			}
		}
	}
	return "", looked
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// buildID is the NT_GNU_BUILD_ID note of f.
func buildID(f *elf.File) []byte {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		b, err := s.Data()
		if err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz, dsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			nend := 12 + (int(nsz)+3)&^3
			dend := nend + (int(dsz)+3)&^3
			if dend > len(b) || nend > len(b) {
				break
			}
			if typ == 3 && nsz == 4 && string(b[12:15]) == "GNU" {
				return b[nend : nend+int(dsz)]
			}
			b = b[dend:]
		}
	}
	return nil
}

// section is the bytes of .debug_NAME of the debug file, decompressed,
// nil when it has none. Each section is read once: libc's are
// compressed, and decompressing them is most of the cost of opening.
func (d *Data) section(name string) []byte {
	if b, ok := d.sections[name]; ok {
		return b
	}
	b, _ := godwarf.GetDebugSectionElf(d.dbg, name)
	d.sections[name] = b
	return b
}

// load reads the DWARF and its units. Location lists and line tables
// are read when first needed.
func (d *Data) load() error {
	d.sections = make(map[string][]byte)
	dw, err := dwarf.New(d.section("abbrev"), nil, nil, d.section("info"), nil, nil, d.section("ranges"), d.section("str"))
	if err != nil {
		return fmt.Errorf("DWARF of %s: %w", d.DebugPath, err)
	}
	for _, name := range []string{"addr", "line_str", "rnglists", "str_offsets"} {
		if b := d.section(name); b != nil {
			if err := dw.AddSection(".debug_"+name, b); err != nil {
				return fmt.Errorf("DWARF of %s: .debug_%s: %w", d.DebugPath, name, err)
			}
		}
	}
	d.dw = dw
	starts := unitStarts(d.section("info"))
	d.addr = godwarf.ParseAddr(d.section("addr"))
	d.lineStr = d.section("line_str")
	d.byName = make(map[string][]*Func)

	// The units only: their functions are indexed when an address or
	// a name needs them (libc's DWARF has thousands).
	r := dw.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return fmt.Errorf("DWARF of %s: %w", d.DebugPath, err)
		}
		if e == nil {
			break
		}
		switch e.Tag {
		case dwarf.TagSkeletonUnit:
			return fmt.Errorf("%s: %w", d.DebugPath, ErrSplitDWARF)
		case dwarf.TagCompileUnit, dwarf.TagPartialUnit:
			if e.Val(dwarf.AttrDwoName) != nil || e.Val(0x2130) != nil { // DW_AT_GNU_dwo_name
				return fmt.Errorf("%s: %w", d.DebugPath, ErrSplitDWARF)
			}
			u := unit{entry: e, version: 4}
			for i := len(starts) - 1; i >= 0; i-- {
				if starts[i].off <= e.Offset {
					u.start, u.version = starts[i].off, starts[i].version
					break
				}
			}
			u.low, _ = e.Val(dwarf.AttrLowpc).(uint64)
			u.ranges, _ = dw.Ranges(e)
			d.units = append(d.units, u)
		}
		if e.Children {
			r.SkipChildren()
		}
	}
	return nil
}

// index indexes the functions of unit i (and notes runtime.g).
func (d *Data) index(i int) {
	u := &d.units[i]
	if u.indexed {
		return
	}
	u.indexed = true
	if !u.entry.Children {
		return
	}
	r := d.dw.Reader()
	r.Seek(u.entry.Offset)
	if _, err := r.Next(); err != nil {
		return
	}
	for depth := 1; depth > 0; {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		switch e.Tag {
		case 0:
			depth--
			continue
		case dwarf.TagSubprogram:
			d.addFunc(e, i)
		case dwarf.TagStructType:
			if n, _ := e.Val(dwarf.AttrName).(string); n == "runtime.g" {
				d.gType = e.Offset
			}
		}
		// Functions are children of their unit (and, in C++, of
		// namespaces and classes); nothing below a function is.
		if e.Children {
			if e.Tag == dwarf.TagNamespace || e.Tag == dwarf.TagClassType || e.Tag == dwarf.TagStructType {
				depth++
			} else {
				r.SkipChildren()
			}
		}
	}
	for _, f := range d.funcs {
		d.maxLen = max(d.maxLen, f.High-f.Low)
	}
	sort.Slice(d.funcs, func(i, j int) bool { return d.funcs[i].Low < d.funcs[j].Low })
}

// indexAll indexes every unit: for a function by name.
func (d *Data) indexAll() {
	if d.allIndexed {
		return
	}
	d.allIndexed = true
	for i := range d.units {
		d.index(i)
	}
}

// indexAt indexes the units whose code contains pc, or all when none
// says it does.
func (d *Data) indexAt(pc uint64) {
	found := false
	for i := range d.units {
		for _, rg := range d.units[i].ranges {
			if pc >= rg[0] && pc < rg[1] {
				d.index(i)
				found = true
				break
			}
		}
	}
	if !found {
		d.indexAll()
	}
}

// addFunc records the subprogram e if it has code.
func (d *Data) addFunc(e *dwarf.Entry, cu int) {
	ranges, err := d.dw.Ranges(e)
	if err != nil || len(ranges) == 0 {
		return
	}
	name, _ := e.Val(dwarf.AttrName).(string)
	if name == "" {
		// A concrete copy of an abstract function: the name is the
		// origin's.
		if ao, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
			or := d.dw.Reader()
			or.Seek(ao)
			if oe, err := or.Next(); err == nil && oe != nil {
				name, _ = oe.Val(dwarf.AttrName).(string)
			}
		} else if sp, ok := e.Val(dwarf.AttrSpecification).(dwarf.Offset); ok {
			or := d.dw.Reader()
			or.Seek(sp)
			if oe, err := or.Next(); err == nil && oe != nil {
				name, _ = oe.Val(dwarf.AttrName).(string)
			}
		}
	}
	f := &Func{Name: name, Low: ranges[0][0], High: ranges[0][1], off: e.Offset, unit: cu}
	for _, rg := range ranges[1:] {
		// A function split in parts (.cold): one Func per part, the
		// same DIE.
		g := *f
		g.Low, g.High = rg[0], rg[1]
		d.funcs = append(d.funcs, &g)
	}
	d.funcs = append(d.funcs, f)
	if name != "" {
		d.byName[name] = append(d.byName[name], f)
	}
}

type unitStart struct {
	off     dwarf.Offset
	version int
}

// unitStarts reads the headers of the units of .debug_info: where each
// starts and its DWARF version (debug/dwarf keeps the version to itself,
// and location lists are read differently from version 5 on).
func unitStarts(info []byte) []unitStart {
	var us []unitStart
	for off := 0; off+6 <= len(info); {
		n := int(binary.LittleEndian.Uint32(info[off:]))
		hdr := 4
		if n == 0xffffffff {
			if off+14 > len(info) {
				break
			}
			n = int(binary.LittleEndian.Uint64(info[off+4:]))
			hdr = 12
		}
		v := int(binary.LittleEndian.Uint16(info[off+hdr:]))
		us = append(us, unitStart{dwarf.Offset(off), v})
		if n <= 0 {
			break
		}
		off += hdr + n
	}
	return us
}

// Funcs returns the functions named name (a static C function may have
// several).
func (d *Data) Funcs(name string) []*Func {
	d.indexAll()
	return d.byName[name]
}

// FuncAt returns the function whose code contains pc.
func (d *Data) FuncAt(pc uint64) (*Func, bool) {
	d.indexAt(pc)
	i := sort.Search(len(d.funcs), func(i int) bool { return d.funcs[i].Low > pc })
	for j := i - 1; j >= 0 && pc-d.funcs[j].Low < d.maxLen; j-- {
		if f := d.funcs[j]; pc >= f.Low && pc < f.High {
			return f, true
		}
	}
	return nil, false
}

// funcTreeAt returns the function containing pc and its DIE tree.
func (d *Data) funcTreeAt(pc uint64) (*Func, *godwarf.Tree, error) {
	f, ok := d.FuncAt(pc)
	if !ok {
		return nil, nil, fmt.Errorf("no function of the debug information of %s contains 0x%x", d.Path, pc)
	}
	t, err := d.tree(f)
	if err != nil {
		return nil, nil, err
	}
	return f, t, nil
}

// tree loads the DIE tree of f: its parameters, blocks, inlined copies.
func (d *Data) tree(f *Func) (*godwarf.Tree, error) {
	t, err := godwarf.LoadTree(f.off, d.dw, 0)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	return t, nil
}

// lineInfo is the line table of u.
func (d *Data) lineInfo(u *unit) *line.DebugLineInfo {
	if u.lines != nil || u.noLines {
		return u.lines
	}
	off, ok := u.entry.Val(dwarf.AttrStmtList).(int64)
	if d.lineSec == nil {
		d.lineSec = d.section("line")
	}
	if !ok || off < 0 || int(off) >= len(d.lineSec) {
		u.noLines = true
		return nil
	}
	dir, _ := u.entry.Val(dwarf.AttrCompDir).(string)
	u.lines = line.Parse(dir, bytes.NewBuffer(d.lineSec[off:]), d.lineStr, nil, 0, false, 8)
	return u.lines
}

// Line returns the source file and line of pc.
func (d *Data) Line(pc uint64) (string, int, bool) {
	f, ok := d.FuncAt(pc)
	if !ok {
		return "", 0, false
	}
	li := d.lineInfo(&d.units[f.unit])
	if li == nil {
		return "", 0, false
	}
	file, ln := li.PCToLine(f.Low, pc)
	return file, ln, file != ""
}

// LinePCs returns the addresses at which the source line file:line
// starts: in each function, and in each inlined copy of one, the first
// statement address of the line (docs/DESIGN.md §10). file matches a
// path of the line tables by suffix ("main.c", "pkg/x.go"); a suffix that
// names more than one file is an error naming them.
func (d *Data) LinePCs(file string, ln int) ([]uint64, error) {
	var paths []string
	seen := make(map[string]bool)
	var pcs []uint64
	for i := range d.units {
		li := d.lineInfo(&d.units[i])
		if li == nil {
			continue
		}
		for _, fe := range li.FileNames {
			if !pathSuffix(fe.Path, file) {
				continue
			}
			if !seen[fe.Path] {
				seen[fe.Path] = true
				paths = append(paths, fe.Path)
			}
			for _, ps := range li.LineToPCs(fe.Path, ln) {
				if ps.Stmt {
					pcs = append(pcs, ps.PC)
				}
			}
		}
	}
	switch {
	case len(paths) == 0:
		return nil, fmt.Errorf("%s: no source file %s in the line tables of %s", file, file, d.DebugPath)
	case len(paths) > 1:
		return nil, fmt.Errorf("%s names %d files (%s): write more of its path", file, len(paths), strings.Join(paths, ", "))
	case len(pcs) == 0:
		return nil, fmt.Errorf("%s:%d: no code at this line", file, ln)
	}
	sort.Slice(pcs, func(i, j int) bool { return pcs[i] < pcs[j] })
	// The first address per copy: the innermost inlined instance or
	// function containing the address.
	copies := make(map[dwarf.Offset]bool)
	var out []uint64
	for _, pc := range pcs {
		f, ok := d.FuncAt(pc)
		if !ok {
			continue
		}
		key := f.off
		if t, err := d.tree(f); err == nil {
			if st := reader.InlineStack(t, pc); len(st) > 0 {
				key = st[0].Offset
			}
		}
		if copies[key] {
			continue
		}
		copies[key] = true
		out = append(out, pc)
	}
	return out, nil
}

// pathSuffix reports whether suffix is path or a whole-component suffix
// of it.
func pathSuffix(path, suffix string) bool {
	if path == suffix {
		return true
	}
	return strings.HasSuffix(path, "/"+strings.TrimPrefix(suffix, "/"))
}

// Frame returns the frame rules at pc: the CFA and where the caller's
// registers are saved.
func (d *Data) Frame(pc uint64) (*frame.FrameContext, error) {
	if d.cfi == nil {
		d.cfi = newCFI(d.Path, d.exe, d.dbg)
	}
	return d.cfi.Frame(pc)
}

// CFI is the call frame information of an ELF file, which unwinds its
// stack frames: .eh_frame, or .debug_frame (Go writes only that). A file
// has it without any other debug information.
type CFI struct {
	path string
	exe  *elf.File
	dbg  *elf.File
	own  bool // Close closes exe
	fdes frame.FrameDescriptionEntries
	err  error
	done bool
}

// OpenCFI opens the call frame information of the ELF file at path; it
// is parsed at the first Frame.
func OpenCFI(path string) (*CFI, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("call frame information of %s: %w", path, err)
	}
	c := newCFI(path, f, f)
	c.own = true
	return c, nil
}

func newCFI(path string, exe, dbg *elf.File) *CFI { return &CFI{path: path, exe: exe, dbg: dbg} }

// Close closes the file OpenCFI opened.
func (c *CFI) Close() error {
	if c.own {
		return c.exe.Close()
	}
	return nil
}

func (c *CFI) parse() {
	c.done = true
	// FDEForPC searches by address; the sections are in link order
	// (main after the functions of other units, in gcc's output).
	defer func() {
		sort.Slice(c.fdes, func(i, j int) bool { return c.fdes[i].Begin() < c.fdes[j].Begin() })
	}()
	// Both sections: code built without unwind tables has its entries
	// in .debug_frame only, beside the .eh_frame of the C runtime's.
	found := false
	if s := c.exe.Section(".eh_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		if b, err := s.Data(); err == nil {
			if fdes, err := frame.Parse(b, binary.LittleEndian, 0, 8, s.Addr); err == nil {
				c.fdes, found = fdes, true
			}
		}
	}
	for _, f := range []*elf.File{c.exe, c.dbg} {
		if b, err := godwarf.GetDebugSectionElf(f, "frame"); err == nil && len(b) > 0 {
			if fdes, err := frame.Parse(b, binary.LittleEndian, 0, 8, 0); err == nil {
				c.fdes, found = c.fdes.Append(fdes), true
			}
			break
		}
	}
	if !found {
		c.err = fmt.Errorf("%s has no .eh_frame or .debug_frame", c.path)
	}
}

// Frame returns the frame rules at pc, a link-time address: the CFA and
// where the caller's registers are saved.
func (c *CFI) Frame(pc uint64) (*frame.FrameContext, error) {
	if !c.done {
		c.parse()
	}
	if c.err != nil {
		return nil, c.err
	}
	fde, err := c.fdes.FDEForPC(pc)
	if err != nil {
		return nil, err
	}
	return fde.EstablishFrame(pc)
}

// FuncLinePCs returns the addresses of line rel of the function
// containing pc, counted from the line the function is declared on (0:
// that line), in that function only: perf probe's FUNC:+N.
func (d *Data) FuncLinePCs(pc uint64, rel int) ([]uint64, error) {
	f, t, err := d.funcTreeAt(pc)
	if err != nil {
		return nil, err
	}
	decl, ok := t.Val(dwarf.AttrDeclLine).(int64)
	if !ok {
		return nil, fmt.Errorf("%s: its debug information gives no declaration line", f.Name)
	}
	file, _, ok := d.Line(f.Low)
	if !ok {
		return nil, fmt.Errorf("%s: no line table covers it", f.Name)
	}
	all, err := d.LinePCs(file, int(decl)+rel)
	if err != nil {
		return nil, fmt.Errorf("%s:+%d: %w", f.Name, rel, err)
	}
	var pcs []uint64
	for _, p := range all {
		if g, ok := d.FuncAt(p); ok && g.off == f.off {
			pcs = append(pcs, p)
		}
	}
	if len(pcs) == 0 {
		return nil, fmt.Errorf("%s:+%d (%s:%d): no code of %s at this line", f.Name, rel, file, int(decl)+rel, f.Name)
	}
	return pcs, nil
}
