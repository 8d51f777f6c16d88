package dwarf

import (
	"debug/dwarf"

	"github.com/go-delve/delve/pkg/dwarf/reader"
)

// Inlined is a function whose code the compiler copied into another at
// an address, with the source position in it there.
type Inlined struct {
	Func string
	File string
	Line int
}

// Inlines returns the functions inlined at pc, innermost first, as
// debuggers show them as frames of their own (docs/DESIGN.md §10): the
// innermost at pc's own line, each other at the line where it calls
// the one inside it. file and line are the position of pc in the
// function that contains the copies: the call of the outermost copy.
// With nothing inlined at pc, Inlines returns no frames and pc's line.
// A copy contains the addresses of its ranges, as delve and addr2line
// -i count them (gcc's DW_AT_entry_pc may lie outside them, where the
// optimizer moved the copy's code away: no frame there), and pc's line
// is the last row of the line table at pc, as addr2line gives it.
//
// The answer of each pc is kept: a stack's addresses repeat from hit to
// hit, and finding the row reads the unit's line table from its start
// (about 0.2 ms in libc's largest units).
func (d *Data) Inlines(pc uint64) (frames []Inlined, file string, line int) {
	if a, ok := d.inlines[pc]; ok {
		return a.frames, a.file, a.line
	}
	frames, file, line = d.inlinesAt(pc)
	if d.inlines == nil {
		d.inlines = make(map[uint64]inlinesAt)
	}
	d.inlines[pc] = inlinesAt{frames, file, line}
	return frames, file, line
}

type inlinesAt struct {
	frames []Inlined
	file   string
	line   int
}

func (d *Data) inlinesAt(pc uint64) (frames []Inlined, file string, line int) {
	f, ok := d.FuncAt(pc)
	if !ok {
		return nil, "", 0
	}
	// Several rows of the line table may have pc, one per "view" (the
	// call's line, then the inlined function's lines): the last is
	// where its code is.
	file, line, ok = d.lastRow(f, pc)
	if !ok {
		file, line, _ = d.Line(pc)
	}
	if d.trees == nil {
		d.trees = make(map[dwarf.Offset]*inlineTree)
	}
	it := d.trees[f.off]
	if it == nil {
		it = &inlineTree{}
		it.t, it.err = d.tree(f)
		d.trees[f.off] = it
	}
	if it.err != nil {
		return nil, file, line
	}
	for _, e := range reader.InlineStack(it.t, pc) {
		name, _ := e.Val(dwarf.AttrName).(string)
		frames = append(frames, Inlined{Func: name, File: file, Line: line})
		// The next frame out is where this copy is called from.
		idx, ok1 := e.Val(dwarf.AttrCallFile).(int64)
		ln, ok2 := e.Val(dwarf.AttrCallLine).(int64)
		if !ok1 || !ok2 {
			file, line = "", 0
			continue
		}
		file, line = d.unitFile(f.unit, int(idx)), int(ln)
	}
	return frames, file, line
}

// lastRow is the file and line of the last row of the line table at
// exactly pc (Go's debug/dwarf line reader; delve's PCToLine gives the
// first).
func (d *Data) lastRow(f *Func, pc uint64) (string, int, bool) {
	if d.rows == nil {
		// The DWARF's reader without the line table reads no rows:
		// one with it, read when first needed.
		rows, err := dwarf.New(d.section("abbrev"), nil, nil, d.section("info"), d.section("line"), nil, d.section("ranges"), d.section("str"))
		if err != nil {
			return "", 0, false
		}
		for _, name := range []string{"addr", "line_str", "rnglists", "str_offsets"} {
			if b := d.section(name); b != nil {
				rows.AddSection(".debug_"+name, b)
			}
		}
		d.rows = rows
	}
	lr, err := d.rows.LineReader(d.units[f.unit].entry)
	if err != nil || lr == nil {
		return "", 0, false
	}
	// SeekPC gives the last row at or before pc.
	var le dwarf.LineEntry
	if lr.SeekPC(pc, &le) != nil || le.Address != pc || le.File == nil {
		return "", 0, false
	}
	return le.File.Name, le.Line, true
}

// unitFile is file number idx of the line table of unit u
// (DW_AT_call_file), "" when it has none: 1-based before DWARF 5,
// 0-based from it.
func (d *Data) unitFile(u, idx int) string {
	li := d.lineInfo(&d.units[u])
	if li == nil {
		return ""
	}
	if d.units[u].version < 5 {
		idx--
	}
	if idx < 0 || idx >= len(li.FileNames) {
		return ""
	}
	return li.FileNames[idx].Path
}
