package resolve

import (
	"debug/elf"
	"fmt"
	"strings"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Location is a probe resolved in one file: the file's identity and the
// file offset of the probed instruction, with the instruction itself.
type Location struct {
	Path   string // the file that was resolved
	ID     elfsym.FileID
	Offset uint64 // file offset of the probed instruction
	Vaddr  uint64 // its link-time virtual address
	// Function names the containing function and the probe's offset in
	// it ("malloc+0x4"), for messages.
	Function string
	Inst     arch.Inst
	// IFunc: the symbol is a GNU indirect function, so the probe is on
	// its resolver, which the dynamic linker runs once, not on the
	// implementation that calls reach.
	IFunc bool
	// Rets are, for a return probe on a Go function, the function's
	// ret instructions: Go moves goroutine stacks, so its returns are
	// caught where they happen instead of by rewriting the return
	// address (golang/go#22008).
	Rets []*Location
	// Restarts are, for a probe at the entry of a Go function, the calls
	// of its prologue to runtime.morestack, after which the function
	// starts again from its entry: that second entry is not a call.
	Restarts []*Location
	// Go: the file was built by Go, whose goroutine stacks move: no
	// return address in it may ever be rewritten, whatever probes
	// share the function.
	Go bool
	// ABI is the calling convention of the function, and Args the
	// spec's fetch-args bound to it (uprobe.Spec.Bind).
	ABI  uprobe.ABI
	Args []uprobe.FetchArg
	// FuncStart and FuncEnd are the containing function's bounds
	// (link-time addresses; FuncEnd 0 when its size is unknown), and
	// FuncOffset the file offset of its start.
	FuncStart, FuncEnd, FuncOffset uint64
	// RefCtr is the file offset of the probe's reference counter (a
	// USDT semaphore, PATH:OFFSET(REF_CTR_OFFSET)), 0 for none: in a
	// writable segment of the file.
	RefCtr uint64
	// LSDA: the file has C++ exception tables (.gcc_except_table), so a
	// landing pad may be anywhere in a function.
	LSDA bool
}

// Patch returns the instructions a jmp at the location would replace, and
// whether it may replace them (arch.PatchSpan), reading the function from
// f, the file the location was resolved in.
func (loc *Location) Patch(f *elfsym.File) (arch.Span, error) {
	if loc.FuncEnd <= loc.FuncStart {
		return arch.Span{}, fmt.Errorf("%s: the function's size is unknown: %w", loc.Function, arch.ErrNotPatchable)
	}
	code := make([]byte, loc.FuncEnd-loc.FuncStart)
	if n, err := f.ReadAt(code, int64(loc.FuncOffset)); n < len(code) {
		return arch.Span{}, fmt.Errorf("%s: read the function: %w", loc.Function, err)
	}
	sp, err := arch.PatchSpanPadded(code, padding(f, loc), int(loc.Vaddr-loc.FuncStart))
	if err != nil {
		return sp, fmt.Errorf("%s: %w", loc.Function, err)
	}
	return sp, nil
}

// padding returns the bytes after the location's function up to the next
// 16-byte boundary that no function covers: a sized symbol or an unwind
// entry starting there ends them. They are where the assembler aligns
// the next function, for arch.PatchSpanPadded.
func padding(f *elfsym.File, loc *Location) []byte {
	end := loc.FuncEnd
	n := int((16 - end%16) % 16)
	for i := 0; i < n; i++ {
		if _, _, _, ok := f.Function(end + uint64(i)); ok {
			n = i
			break
		}
	}
	if n == 0 {
		return nil
	}
	pad := make([]byte, n)
	if got, _ := f.ReadAt(pad, int64(loc.FuncOffset+(end-loc.FuncStart))); got < n {
		return nil
	}
	return pad
}

// Error is a spec that cannot be armed in a file: unknown symbol, offset
// outside any executable segment, offset inside an instruction, refused
// instruction, a fetch-arg that the function cannot have.
type Error struct {
	Spec string // the spec as written
	Path string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("probe %q in %s: %v", e.Spec, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// In finds the probed instruction of spec in the ELF file f and checks
// that it can be probed: the offset must be an instruction boundary
// (proved by decoding from the start of the containing function) and the
// instruction must not be one that arch refuses. The fetch-args are bound
// to the function's ABI (uprobe.Spec.Bind); a Go function's rets and
// morestack calls are found. Errors are *Error.
func In(f *elfsym.File, spec *uprobe.Spec) (Location, error) {
	loc, err := resolve(f, spec)
	if err != nil {
		return Location{}, &Error{Spec: spec.Text, Path: f.Path, Err: err}
	}
	return loc, nil
}

func resolve(f *elfsym.File, spec *uprobe.Spec) (Location, error) {
	loc := Location{Path: f.Path, ID: f.ID}
	if spec.Symbol != "" {
		sym, err := f.Lookup(spec.Symbol)
		if err != nil {
			return loc, err
		}
		if sym.Size > 0 && spec.Offset >= sym.Size {
			return loc, fmt.Errorf("offset 0x%x is beyond the end of %s (size 0x%x)", spec.Offset, sym.Name, sym.Size)
		}
		loc.IFunc = sym.Type == elf.STT_GNU_IFUNC
		loc.Vaddr = sym.Value + spec.Offset
		off, err := f.FileOffset(loc.Vaddr)
		if err != nil {
			return loc, fmt.Errorf("symbol %s: %w", sym.Name, err)
		}
		loc.Offset = off
	} else {
		vaddr, err := f.Vaddr(spec.Offset)
		if err != nil {
			return loc, fmt.Errorf("file offset 0x%x: %w", spec.Offset, err)
		}
		loc.Offset, loc.Vaddr = spec.Offset, vaddr
	}

	start, end, name, ok := f.Function(loc.Vaddr)
	if !ok {
		if spec.Symbol == "" || spec.Offset != 0 {
			return loc, fmt.Errorf("cannot prove that 0x%x (file offset 0x%x) is an instruction boundary: no symbol or unwind entry contains it", loc.Vaddr, loc.Offset)
		}
		// A symbol's own address is the start of an instruction.
		start, end, name = loc.Vaddr, loc.Vaddr+arch.MaxInstLen, spec.Symbol
	}
	if name == "" {
		name = fmt.Sprintf("func_0x%x", start)
	}
	loc.Function = name
	if loc.Vaddr != start {
		loc.Function = fmt.Sprintf("%s+0x%x", name, loc.Vaddr-start)
	}

	// Decode from the function's start through the probed instruction.
	startOff, err := f.FileOffset(start)
	if err != nil {
		return loc, fmt.Errorf("function %s: %w", name, err)
	}
	n := int(loc.Vaddr-start) + arch.MaxInstLen
	if fnLen := int(end - start); end > start && n > fnLen+arch.MaxInstLen {
		n = fnLen + arch.MaxInstLen
	}
	goEntry := f.IsGo() && end > start && loc.Vaddr == start
	if goEntry {
		n = int(end-start) + arch.MaxInstLen // the whole function, see goSites
	}
	code := make([]byte, n)
	got, err := f.ReadAt(code, int64(startOff))
	if got <= int(loc.Vaddr-start) {
		return loc, fmt.Errorf("read code of %s at file offset 0x%x: %w", name, startOff, err)
	}
	code = code[:got]
	if err := arch.CheckBoundary(code, int(loc.Vaddr-start)); err != nil {
		return loc, fmt.Errorf("%s (file offset 0x%x): %w", loc.Function, loc.Offset, err)
	}
	inst, err := arch.Decode(code[loc.Vaddr-start:])
	if err != nil {
		return loc, fmt.Errorf("%s (file offset 0x%x): %w", loc.Function, loc.Offset, err)
	}
	if inst.Class == arch.ClassRefuse {
		return loc, fmt.Errorf("%s (file offset 0x%x): instruction %q cannot be probed: %s", loc.Function, loc.Offset, inst.String(), inst.Reason)
	}
	if spec.Kind == uprobe.Return && loc.Vaddr != start {
		return loc, fmt.Errorf("return probe at %s: a return probe must be at the start of a function", loc.Function)
	}
	loc.Inst = inst
	loc.FuncStart, loc.FuncOffset = start, startOff
	if end > start {
		loc.FuncEnd = end
	}
	if spec.RefCtr != 0 {
		if !f.Writable(spec.RefCtr, 2) {
			return loc, fmt.Errorf("reference counter at file offset 0x%x: not in a writable, non-executable segment of the file", spec.RefCtr)
		}
		loc.RefCtr = spec.RefCtr
	}
	loc.LSDA = f.HasSection(".gcc_except_table")
	loc.Go = f.IsGo()
	if f.GoRegisterABI(name) {
		loc.ABI = uprobe.GoRegs
	}
	if err := spec.CheckArgNAtEntry(loc.Vaddr == start, loc.Function); err != nil {
		return loc, err
	}
	if loc.Args, err = spec.Bind(loc.ABI); err != nil {
		return loc, err
	}
	if spec.Kind == uprobe.Return && f.IsGo() && !goEntry {
		return loc, fmt.Errorf("return probe on Go function %s: its size is unknown, so its ret instructions cannot be found", name)
	}
	if goEntry {
		rets, restarts, err := goSites(f, code, start, end)
		if err != nil {
			return loc, fmt.Errorf("function %s of a Go program: %w", name, err)
		}
		if spec.Kind == uprobe.Return && len(rets) == 0 {
			return loc, fmt.Errorf("return probe on Go function %s: it has no ret instruction", name)
		}
		at := func(r funcInst) *Location {
			return &Location{Path: loc.Path, ID: loc.ID, Offset: startOff + uint64(r.pos), Vaddr: start + uint64(r.pos),
				Function: fmt.Sprintf("%s+0x%x", name, r.pos), Inst: r.inst, Go: true}
		}
		if spec.Kind == uprobe.Return {
			for _, r := range rets {
				loc.Rets = append(loc.Rets, at(r))
			}
		}
		if loc.ABI == uprobe.GoRegs {
			for _, r := range restarts {
				loc.Restarts = append(loc.Restarts, at(r))
			}
		}
	}
	return loc, nil
}

// funcInst is an instruction of a function.
type funcInst struct {
	pos  int // offset in the function
	inst arch.Inst
}

// goSites decodes a whole Go function, whose bytes are in code and which
// spans [start, end), and returns its ret instructions and the calls of
// its stack-split prologue to runtime.morestack: after those the runtime
// runs the function again from its entry, on a grown stack (or after a
// preemption), which is one call, not two.
func goSites(f *elfsym.File, code []byte, start, end uint64) (rets, restarts []funcInst, err error) {
	for pos := 0; pos < int(end-start); {
		if pos >= len(code) {
			return nil, nil, fmt.Errorf("function bytes end at +0x%x", pos)
		}
		inst, err := arch.Decode(code[pos:])
		if err != nil {
			return nil, nil, fmt.Errorf("at +0x%x: %w", pos, err)
		}
		switch inst.Flow {
		case arch.FlowRet:
			rets = append(rets, funcInst{pos, inst})
		case arch.FlowCall:
			if to, ok := inst.Target(start + uint64(pos)); ok {
				if _, _, callee, ok := f.Function(to); ok && strings.HasPrefix(callee, "runtime.morestack") {
					restarts = append(restarts, funcInst{pos, inst})
				}
			}
		}
		pos += inst.Len
	}
	return rets, restarts, nil
}
