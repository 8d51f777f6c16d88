package kernel

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// location is a uprobe spec resolved to what uprobe_events takes.
type location struct {
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
	// RefCtr is the file offset of the probe's reference counter (a
	// USDT semaphore), 0 for none: the kernel raises it.
	RefCtr uint64
	// ID is the probed file's device and inode.
	ID elfsym.FileID
}

// resolveUprobe finds the file and the file offset spec probes with res
// (package resolve, as the ptrace engine does), but once, before the
// program runs (docs/DESIGN.md §2):
//   - a library name is looked up as res's options say (the libraries of
//     the program to run, else the system's), so the program must load
//     that same file for the probe to fire; a name that is no library
//     there is an error wrapping elfsym.ErrNoLibrary, with the closest
//     names;
//   - the probed offset must be an instruction boundary, proved by
//     decoding from the start of the containing function: the kernel
//     does not check, and a probe inside an instruction corrupts the
//     program.
//
// What kernel uprobes cannot do is refused here: return probes on Go
// code, $argN in a return probe, paths with white space.
func resolveUprobe(res *resolve.Resolver, spec *uprobe.Spec) (location, error) {
	rl, err := res.Resolve(spec)
	if err != nil {
		// The kernel needs the file before the program runs: a
		// library must exist already.
		return location{}, err
	}
	abs, err := filepath.Abs(rl.Path)
	if err != nil {
		return location{}, fmt.Errorf("kernel: probe %q: %w", spec.Text, err)
	}
	if strings.ContainsAny(abs, " \t\n\v\f\r") {
		// uprobe_events splits its lines at white space.
		if real, err := filepath.EvalSymlinks(abs); err == nil && !strings.ContainsAny(real, " \t\n\v\f\r") {
			abs = real
		} else {
			return location{}, fmt.Errorf("kernel: probe %q: the kernel cannot probe %q: its path contains white space", spec.Text, abs)
		}
	}
	loc := location{Path: abs, Offset: rl.Offset, Function: rl.Function, ABI: rl.ABI, Args: rl.Args, Go: rl.Go, RefCtr: rl.RefCtr, ID: rl.ID}
	for i := range loc.Args {
		if e := findOp(loc.Args[i].Expr, uprobe.OpIndexed); e != nil {
			// uprobe_events has no index register: a USDT argument
			// with a SIB operand ("8@(%rax,%rdx,8)").
			return loc, fmt.Errorf("kernel: probe %q: argument %s is memory at a base plus an index register %s, which kernel fetch-args cannot compute (the ptrace backend does)", spec.Text, loc.Args[i].Name, e)
		}
	}
	if spec.Kind == uprobe.Return && loc.Go {
		// A uretprobe replaces the return address on the stack; the
		// Go runtime copies goroutine stacks to grow them, follows
		// the return addresses and dies of the foreign one
		// (golang/go#22008). The ptrace backend catches Go returns at
		// the function's ret instructions instead.
		return loc, fmt.Errorf("kernel: probe %q: %s is a Go program, and a kernel return probe would crash it when a goroutine's stack grows (golang/go#22008); the ptrace backend traces Go returns safely", spec.Text, loc.Path)
	}
	for i := range loc.Args {
		if a := &loc.Args[i]; a.Type.BitWidth > 0 && a.Type.Kind == uprobe.Signed {
			// A USDT argument -1@%ah (docs/DESIGN.md §9).
			return loc, fmt.Errorf("kernel: probe %q: argument %s is a signed high-byte register (a USDT argument like -1@%%ah), and the kernel's bitfields are unsigned: the ptrace backend reads it signed; here fetch it unsigned (%s:u8)", spec.Text, a.Name, strings.SplitN(a.Text, ":", 2)[0])
		}
		if a := &loc.Args[i]; a.Len != nil && a.Type.Len > 0 {
			// docs/DESIGN.md §10.
			return loc, fmt.Errorf("kernel: probe %q: %s is a Go slice, and its elements are its length's worth of an array: the kernel's arrays have a fixed length (TYPE[N]) and would read past the slice's end, or fault at a nil one; the ptrace backend reads it exactly; here fetch %s.len, %s.cap or one element, %s[0]", spec.Text, a.Name, a.Name, a.Name, a.Name)
		}
		if a := &loc.Args[i]; a.Len != nil {
			// docs/DESIGN.md §10.
			// No kernel fetch-arg reads a length's worth of bytes:
			// string and ustring run to a NUL, which a Go string does
			// not have, and an array TYPE[N] has a fixed N, at most
			// 64 (the kernel's MAX_ARRAY_LEN).
			return loc, fmt.Errorf("kernel: probe %q: %s is a Go string, a pointer and a length with no NUL after it; the kernel's fetch-args cannot read a length's worth of bytes (string and ustring read to a NUL, past the string's end into the bytes after it; arrays have a fixed length, at most 64): the ptrace backend reads it exactly; here fetch its length (%s.len); %s.str:string would read from its pointer to the next NUL, which is past the string's end (among a Go program's constant strings, often thousands of bytes past it)", spec.Text, a.Name, a.Name, a.Name)
		}
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

// findOp returns the first node of e with the operation op, or nil.
func findOp(e *uprobe.Expr, op uprobe.Op) *uprobe.Expr {
	for ; e != nil; e = e.Inner {
		if e.Op == op {
			return e
		}
	}
	return nil
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
