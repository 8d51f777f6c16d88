package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
)

// UprobeLine renders the uprobe_events line of spec under the kernel's
// group and event names, for the file at path and the file offset:
//
//	p:GROUP/EVENT PATH:0xOFFSET NAME=FETCHARG:TYPE ...
//
// ("r:" for return probes). Every fetch-arg is written out in the
// kernel's syntax with its name and type: registers by their kernel names
// (%di, %ax, ...), and $argN, which the kernel accepts only for kernel
// function entries, as the SysV register of the Nth integer argument (%di
// %si %dx %cx %r8 %r9), which is what it means at a function's first
// instruction. Registers the kernel does not know (%ds, %fs_base...) are
// written as they are: the kernel refuses them, with its own message.
func UprobeLine(spec *uprobe.Spec, group, event, path string, offset uint64) string {
	args, err := spec.Bind(uprobe.SysV)
	if err != nil {
		args = spec.Args
	}
	return uprobeLine(spec, args, group, event, path, offset, "")
}

// uprobeLine is UprobeLine with the spec's fetch-args bound (args) and
// extra fetch-args written before them (" NAME=FETCHARG:TYPE...", or "").
func uprobeLine(spec *uprobe.Spec, args []uprobe.FetchArg, group, event, path string, offset uint64, extra string) string {
	var b strings.Builder
	if spec.Kind == uprobe.Return {
		b.WriteString("r:")
	} else {
		b.WriteString("p:")
	}
	b.WriteString(group)
	b.WriteByte('/')
	b.WriteString(event)
	b.WriteByte(' ')
	b.WriteString(path)
	b.WriteString(":0x")
	b.WriteString(strconv.FormatUint(offset, 16))
	b.WriteString(extra)
	for i := range args {
		a := &args[i]
		b.WriteByte(' ')
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.Expr.String())
		b.WriteByte(':')
		b.WriteString(a.Type.String())
	}
	return b.String()
}

// Location is a uprobe spec resolved to what uprobe_events takes.
type Location struct {
	Path   string // absolute path of the probed file
	Offset uint64 // file offset of the probed instruction, bytes
	// Function names the containing function and the probe's offset in
	// it ("push_func", "mid_func+0x8"), "" when unknown.
	Function string
	// ABI is the function's calling convention, and Args the spec's
	// fetch-args bound to it (uprobe.Spec.Bind).
	ABI  uprobe.ABI
	Args []uprobe.FetchArg
	// Go: the file was built by Go.
	Go bool
}

// ResolveUprobe finds the file and the file offset spec probes, as the
// ptrace engine does but before the program runs:
//   - a library name (no '/': "libc", "libz.so.1") is looked up where the
//     dynamic linker looks (elfsym.SearchLibrary's places), so the program
//     must load that same file for the probe to fire; a name that is no
//     library there is an error wrapping elfsym.ErrNoLibrary, with the
//     closest names (Options.Libraries also knows a program's own);
//   - SYMBOL[+OFFS] is the symbol's address plus OFFS, converted through
//     the executable PT_LOAD segment; OFFS must lie within the symbol;
//   - a numeric offset is a file offset, which must lie in an executable
//     segment (the kernel would accept any offset and silently never
//     fire).
//
// The probed offset must be an instruction boundary, proved by decoding
// from the start of the containing function, as the engine requires: the
// kernel does not check, and a probe inside an instruction corrupts the
// program.
func ResolveUprobe(spec *uprobe.Spec) (Location, error) {
	return resolveUprobe(spec, nil)
}

// resolveUprobe is ResolveUprobe with library names found in libs (nil:
// the system's places).
func resolveUprobe(spec *uprobe.Spec, libs *elfsym.Libraries) (Location, error) {
	loc, err := locateUprobe(spec, libs)
	if err != nil {
		return loc, err
	}
	if loc.Args, err = spec.Bind(loc.ABI); err != nil {
		return loc, err
	}
	if spec.Kind == uprobe.Return && loc.Go {
		// A uretprobe replaces the return address on the stack; the
		// Go runtime copies goroutine stacks to grow them, follows
		// the return addresses and dies of the foreign one
		// (golang/go#22008). The ptrace backend catches Go returns at
		// the function's ret instructions instead.
		return loc, fmt.Errorf("kernel: probe %q: %s is a Go program, and a kernel return probe would crash it when a goroutine's stack grows (golang/go#22008); the ptrace backend traces Go returns safely", spec.Text, loc.Path)
	}
	if spec.Kind == uprobe.Return {
		for i := range loc.Args {
			if e := entryReg(loc.Args[i].Expr); e != nil {
				// The kernel's own message, then why.
				return loc, &uprobe.Error{Text: spec.Text, Pos: spec.Args[i].Pos + strings.Index(spec.Args[i].Text, "$arg"),
					Msg: fmt.Sprintf("$arg* can be used only on function entry or exit: $arg%d of a return probe is the argument at the entry, which kernel uretprobes cannot save (the ptrace backend does)", e.Imm)}
			}
		}
	}
	return loc, nil
}

// entryReg returns the OpEntryReg node of e, or nil.
func entryReg(e *uprobe.Expr) *uprobe.Expr {
	for ; e != nil; e = e.Inner {
		if e.Op == uprobe.OpEntryReg {
			return e
		}
	}
	return nil
}

// locateUprobe is resolveUprobe but for the fetch-args.
func locateUprobe(spec *uprobe.Spec, libs *elfsym.Libraries) (loc Location, err error) {
	path := spec.Path
	if spec.IsLibrary() {
		if libs == nil {
			libs = elfsym.NewLibraries(elfsym.LibraryEnv{LDLibraryPath: os.Getenv("LD_LIBRARY_PATH")})
		}
		p, err := libs.Find(spec.Path)
		if err != nil {
			// The kernel needs the file before the program runs;
			// the library must exist already.
			return loc, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
		}
		path = p
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return loc, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
	}
	if strings.ContainsAny(abs, " \t\n\v\f\r") {
		// uprobe_events splits its lines at white space.
		if real, err := filepath.EvalSymlinks(abs); err == nil && !strings.ContainsAny(real, " \t\n\v\f\r") {
			abs = real
		} else {
			return loc, fmt.Errorf("kernel: probe %q: the kernel cannot probe %q: its path contains white space", spec.Text, abs)
		}
	}
	loc.Path = abs

	f, err := elfsym.Open(abs)
	if err != nil {
		return loc, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
	}
	defer f.Close()
	defer func() {
		// Whatever return found the function: its ABI.
		name, _, _ := strings.Cut(loc.Function, "+")
		if name == "" {
			name = spec.Symbol
		}
		if err == nil && f.GoRegisterABI(name) {
			loc.ABI = uprobe.GoRegs
		}
		loc.Go = f.IsGo()
	}()

	var vaddr uint64
	if spec.Symbol != "" {
		sym, err := f.Lookup(spec.Symbol)
		if err != nil {
			return loc, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
		}
		if sym.Size > 0 && spec.Offset >= sym.Size {
			return loc, fmt.Errorf("kernel: probe %q: offset 0x%x is beyond the end of %s (size 0x%x)", spec.Text, spec.Offset, sym.Name, sym.Size)
		}
		vaddr = sym.Value + spec.Offset
		if loc.Offset, err = f.FileOffset(vaddr); err != nil {
			return loc, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
		}
	} else {
		loc.Offset = spec.Offset
		if vaddr, err = f.Vaddr(spec.Offset); err != nil {
			return loc, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
		}
	}

	start, end, name, ok := f.Function(vaddr)
	if !ok {
		if spec.Symbol != "" && spec.Offset == 0 {
			return loc, nil // a symbol's address starts an instruction
		}
		return loc, fmt.Errorf("kernel: probe %q: cannot prove that file offset 0x%x is an instruction boundary: no symbol or unwind entry contains it", spec.Text, loc.Offset)
	}
	if name == "" {
		name = fmt.Sprintf("func_0x%x", start)
	}
	loc.Function = name
	if vaddr == start {
		return loc, nil
	}
	loc.Function = fmt.Sprintf("%s+0x%x", name, vaddr-start)
	if spec.Kind == uprobe.Return {
		return loc, fmt.Errorf("kernel: probe %q at %s: a return probe must be at the start of a function", spec.Text, loc.Function)
	}
	startOff, err := f.FileOffset(start)
	if err != nil {
		return loc, fmt.Errorf("kernel: probe %q: function %s: %w", spec.Text, name, err)
	}
	n := int(vaddr-start) + arch.MaxInstLen
	if end > start && n > int(end-start)+arch.MaxInstLen {
		n = int(end-start) + arch.MaxInstLen
	}
	code := make([]byte, n)
	got, err := f.ReadAt(code, int64(startOff))
	if got <= int(vaddr-start) {
		return loc, fmt.Errorf("kernel: probe %q: read the code of %s: %v", spec.Text, name, err)
	}
	if err := arch.CheckBoundary(code[:got], int(vaddr-start)); err != nil {
		return loc, fmt.Errorf("kernel: probe %q at %s (file offset 0x%x): %w", spec.Text, loc.Function, loc.Offset, err)
	}
	return loc, nil
}
