package engine

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/regnum"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve/dwarf"
	"github.com/ptprobe/ptprobe/uprobe"
)

// DefaultStackDepth is the number of frames a stack trace has at most
// when no depth is given.
const DefaultStackDepth = 64

// Frame is one frame of a user stack: its address and what it is.
type Frame struct {
	PC uint64
	// Func is the function containing PC ("" when no symbol does), Off
	// PC's offset in it.
	Func string
	Off  uint64
	// File and Line are the source position, from DWARF (File "" when
	// the file has none).
	File string
	Line int
	// Module is the file PC is in.
	Module string
	// Inlined marks a function the compiler inlined into the frame's
	// function (Func, with File and Line in it): a frame of its own, as
	// debuggers show it, before the frame of the function it is in,
	// which has the same PC.
	Inlined bool
}

// Stacks unwinds the user stacks of a traced program's threads at their
// hits: with the CFI of the code's file (delve's frame package reading
// .eh_frame or .debug_frame) where it has an entry for the address, else
// by the frame pointer chain, which Go keeps and gcc -O0 too
// (docs/DESIGN.md §10). It caches each file's symbols, CFI and lines, and
// each process's mappings, reading them again when an address is in none.
// It is for handlers, which the ptrace thread runs one at a time: it is not
// safe for concurrent use.
type Stacks struct {
	maps  map[int][]elfsym.Mapping
	files map[string]*stackFile
}

type stackFile struct {
	syms *elfsym.File
	cfi  *dwarf.CFI
	dw   *dwarf.Data // nil without DWARF
	err  error
}

// NewStacks returns an empty Stacks.
func NewStacks() *Stacks {
	return &Stacks{maps: make(map[int][]elfsym.Mapping), files: make(map[string]*stackFile)}
}

// Close closes the files.
func (s *Stacks) Close() error {
	for p, f := range s.files {
		if f.syms != nil {
			f.syms.Close()
		}
		if f.cfi != nil {
			f.cfi.Close()
		}
		if f.dw != nil {
			f.dw.Close()
		}
		delete(s.files, p)
	}
	return nil
}

// mapping is the executable mapping of pid containing addr.
func (s *Stacks) mapping(pid int, addr uint64) (elfsym.Mapping, bool) {
	for again := 0; again < 2; again++ {
		ms, ok := s.maps[pid]
		if !ok || again == 1 {
			var err error
			if ms, err = elfsym.ReadMaps(pid); err != nil {
				return elfsym.Mapping{}, false
			}
			s.maps[pid] = ms
		}
		for _, m := range ms {
			if addr >= m.Start && addr < m.End && m.Path != "" && m.Path[0] == '/' {
				return m, true
			}
		}
	}
	return elfsym.Mapping{}, false
}

func (s *Stacks) file(path string) *stackFile {
	if f, ok := s.files[path]; ok {
		return f
	}
	f := &stackFile{}
	if f.syms, f.err = elfsym.Open(path); f.err == nil {
		f.cfi, _ = dwarf.OpenCFI(path)
		f.dw, _ = dwarf.Open(path, nil)
	}
	s.files[path] = f
	return f
}

// bias is what is added to the file's link-time addresses in the
// mapping m.
func bias(f *elfsym.File, m elfsym.Mapping, addr uint64) (uint64, bool) {
	off, ok := m.FileOffsetOf(addr)
	if !ok {
		return 0, false
	}
	vaddr, err := f.Vaddr(off)
	if err != nil {
		return 0, false
	}
	return addr - vaddr, true
}

// Unwind returns the stack of the thread of ctx, innermost first, at
// most depth frames (0: DefaultStackDepth).
func (s *Stacks) Unwind(ctx uprobe.Context, depth int) []Frame {
	if depth <= 0 {
		depth = DefaultStackDepth
	}
	regs := ctx.Regs()
	pc, sp, bp := regs.Rip, regs.Rsp, regs.Rbp
	word := func(addr uint64) (uint64, bool) {
		var b [8]byte
		if n, _ := ctx.ReadMemory(addr, b[:]); n < 8 {
			return 0, false
		}
		return binary.LittleEndian.Uint64(b[:]), true
	}
	var out []Frame
	for i := 0; len(out) < depth && pc != 0; i++ {
		fr := Frame{PC: pc}
		m, ok := s.mapping(ctx.PID(), pc)
		var f *stackFile
		var b uint64
		if ok {
			f = s.file(m.Path)
			fr.Module = m.Path
			if f.err == nil {
				b, ok = bias(f.syms, m, pc)
			} else {
				ok = false
			}
		}
		look := pc
		if i > 0 {
			look = pc - 1 // the call, not the instruction after it
		}
		var fstart uint64
		if ok {
			if start, _, name, found := f.syms.Function(look - b); found && name != "" {
				fr.Func, fr.Off, fstart = name, pc-b-start, start+b
			} else if f.dw != nil {
				// A local symbol of a stripped file (libc's
				// __libc_start_call_main): its DWARF knows it.
				if df, found := f.dw.FuncAt(look - b); found {
					fr.Func, fr.Off, fstart = df.Name, pc-b-df.Low, df.Low+b
				}
			}
			if f.dw != nil {
				// The functions inlined at the address first, each
				// a frame (docs/DESIGN.md §10); the function's own
				// position is the call of the outermost.
				inl, file, ln := f.dw.Inlines(look - b)
				for _, in := range inl {
					if len(out) < depth {
						out = append(out, Frame{PC: pc, Func: in.Func, File: in.File, Line: in.Line, Module: fr.Module, Inlined: true})
					}
				}
				fr.File, fr.Line = file, ln
			}
		}
		if len(out) == depth {
			break
		}
		out = append(out, fr)

		// The caller: the CFI's rules where the file has them for pc,
		// else the frame pointers.
		var ra, cfa uint64
		unwound := false
		if ok && f.cfi != nil {
			if fc, err := f.cfi.Frame(look - b); err == nil && fc.CFA.Rule == frame.RuleCFA {
				var base uint64
				switch fc.CFA.Reg {
				case regnum.AMD64_Rsp:
					base = sp
				case regnum.AMD64_Rbp:
					base = bp
				}
				if base != 0 {
					cfa = base + uint64(fc.CFA.Offset)
					if r, has := fc.Regs[fc.RetAddrReg]; has && r.Rule == frame.RuleOffset {
						ra, unwound = word(cfa + uint64(r.Offset))
					}
					if r, has := fc.Regs[regnum.AMD64_Rbp]; unwound && has && r.Rule == frame.RuleOffset {
						bp, _ = word(cfa + uint64(r.Offset))
					}
				}
			}
		}
		if !unwound {
			if i == 0 && fstart != 0 && pc == fstart {
				// At a function's first instruction its frame is not
				// set up: the return address is at the stack pointer.
				cfa = sp + 8
				ra, unwound = word(sp)
			} else if bp != 0 && bp >= sp {
				cfa = bp + 16
				ra, unwound = word(bp + 8)
				if unwound {
					bp, _ = word(bp)
				}
			}
		}
		if !unwound || cfa <= sp && i > 0 {
			break
		}
		pc, sp = ra, cfa
	}
	return out
}

// AppendStackText appends the frames as lines under an event, the way
// the kernel's stacktrace trigger prints them: " => func+0xoff (file:line)".
func AppendStackText(b []byte, frames []Frame) []byte {
	for _, f := range frames {
		b = append(b, " => "...)
		b = appendFrameName(b, f)
		if f.File != "" {
			b = append(b, " ("...)
			b = append(b, f.File...)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(f.Line), 10)
			b = append(b, ')')
		}
		b = append(b, '\n')
	}
	return b
}

func appendFrameName(b []byte, f Frame) []byte {
	if f.Inlined {
		// As perf prints an inlined frame: no offset, the code is
		// the caller's.
		return append(append(b, f.Func...), " (inlined)"...)
	}
	if f.Func == "" {
		return append(b, fmt.Sprintf("0x%x", f.PC)...)
	}
	b = append(b, f.Func...)
	return append(b, fmt.Sprintf("+0x%x", f.Off)...)
}

// AppendStackJSON appends the frames as a JSON array of objects with
// "pc", "func" (func+0xoff; "func (inlined)" with "inlined":true for an
// inlined function), and "file" and "line" when known.
func AppendStackJSON(b []byte, frames []Frame) []byte {
	b = append(b, '[')
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"pc":"`...)
		b = append(b, fmt.Sprintf("0x%x", f.PC)...)
		b = append(b, `","func":`...)
		b = appendJSONString(b, string(appendFrameName(nil, f)))
		if f.Inlined {
			b = append(b, `,"inlined":true`...)
		}
		if f.File != "" {
			b = append(b, `,"file":`...)
			b = appendJSONString(b, f.File)
			b = append(b, `,"line":`...)
			b = strconv.AppendInt(b, int64(f.Line), 10)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
