package kernel

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
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
	return uprobeLine(spec, args, group, event, path, offset, nil)
}

// uprobeLine is UprobeLine with the spec's fetch-args bound (args) and
// extra fetch-args written before them.
func uprobeLine(spec *uprobe.Spec, args []uprobe.FetchArg, group, event, path string, offset uint64, extra []uprobe.FetchArg) string {
	cmd := "p:"
	if spec.Kind == uprobe.Return {
		cmd = "r:"
	}
	b := []byte(cmd + group + "/" + event + " " + path + ":0x")
	b = strconv.AppendUint(b, offset, 16)
	b = appendArgs(appendArgs(b, extra), args)
	return string(b)
}

// kprobeLine renders the kprobe_events line of spec under the kernel's
// group and event names, every default written out, with extra fetch-args
// written before the spec's:
//
//	p:GROUP/EVENT [MOD:]KSYM+0xOFFS NAME=FETCHARG:TYPE ...
//
// "r[MAXACTIVE]:" for return probes (also when written with %return,
// which kernels before 5.11 do not know), "0xADDR" for an address. Its
// symbolic fetch-args (@SYM+OFFS) are the kernel's to bind.
func kprobeLine(spec *uprobe.Spec, group, event string, extra []uprobe.FetchArg) string {
	cmd := "p"
	if spec.Kind == uprobe.Return {
		cmd = "r"
		if spec.MaxActive > 0 {
			cmd += strconv.Itoa(spec.MaxActive)
		}
	}
	b := []byte(cmd + ":" + group + "/" + event + " " + spec.Target())
	b = appendArgs(appendArgs(b, extra), spec.Args)
	return string(b)
}

// appendArgs writes fetch-args as both *_events files take them, each
// " NAME=FETCHARG:TYPE" with its defaults written out.
func appendArgs(b []byte, args []uprobe.FetchArg) []byte {
	for i := range args {
		b = append(b, ' ')
		b = append(b, args[i].String()...)
	}
	return b
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
	res := resolve.New(&resolve.Options{Libraries: libs})
	defer res.Close()
	rl, err := res.Resolve(spec)
	if err != nil {
		// The kernel needs the file before the program runs: a
		// library must exist already.
		return Location{}, err
	}
	abs, err := filepath.Abs(rl.Path)
	if err != nil {
		return Location{}, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
	}
	if strings.ContainsAny(abs, " \t\n\v\f\r") {
		// uprobe_events splits its lines at white space.
		if real, err := filepath.EvalSymlinks(abs); err == nil && !strings.ContainsAny(real, " \t\n\v\f\r") {
			abs = real
		} else {
			return Location{}, fmt.Errorf("kernel: probe %q: the kernel cannot probe %q: its path contains white space", spec.Text, abs)
		}
	}
	loc := Location{Path: abs, Offset: rl.Offset, Function: rl.Function, ABI: rl.ABI, Args: rl.Args, Go: rl.Go}
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
