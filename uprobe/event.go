package uprobe

import (
	"syscall"

	"github.com/ptprobe/ptprobe/arch"
)

// Value is one fetched argument of an event.
type Value struct {
	Name  string
	Type  Type
	U     uint64 // integer value (sign-extended for Signed), when Type is not String
	S     string // String values
	Fault bool   // the fetch failed (unreadable memory); printed as "(fault)"
	// Truncated reports a String longer than MaxStringLen bytes, cut to
	// them: printed with "..." after its closing quote.
	Truncated bool
	// Elems are the elements of an array (Type.Len > 0), each as U
	// would be.
	Elems []uint64
	// Slice marks a Go slice (FetchArg.Len with an array type): Count
	// is its length, and Elems (or Strs, for strings) its first
	// elements, at most Type.Len of them.
	Slice bool
	Count uint64
	// Strs are the strings of a Go []string slice (Slice), or of a
	// string array (Type.Len > 0, Kind String, not Slice): the strings
	// the Len pointers at the address point to, as the kernel's
	// string[N] reads them (a char * array). Truncated is set when one
	// of them was cut.
	Strs []string
}

// Event is one probe hit, the same for every backend.
type Event struct {
	TimeNS uint64 // CLOCK_MONOTONIC nanoseconds
	PID    int    // thread group id
	TID    int
	CPU    int // CPU that handled the hit (ptrace backend: the tracer's)
	Comm   string
	Group  string
	Name   string
	Kind   Kind
	IP     uint64 // probe address; return probes: the function's address
	RetIP  uint64 // return probes: the address returned to
	// DurationNS is, for return probes, the time from the function's
	// entry to its return in nanoseconds (0 when the backend does not
	// know it, as the kernel backend does not).
	DurationNS uint64
	Args       []Value
}

// Probe is "GROUP/EVENT".
func (e *Event) Probe() string { return e.Group + "/" + e.Name }

// Context is the stopped thread a handler runs on. It is valid only during
// the handler call.
type Context interface {
	PID() int
	TID() int
	Comm() string
	// Regs are the thread's registers; a handler may change them and the
	// changes take effect when the thread resumes.
	Regs() *Regs
	// ReadMemory reads the thread's memory at addr.
	ReadMemory(addr uint64, p []byte) (int, error)
	// Addr is the virtual address of the probe that fired.
	Addr() uint64
	// FileBase is the virtual address of file offset 0 of the probed
	// file in this process (for @+OFFSET).
	FileBase() uint64
	// EntryData is, at a return probe's return, what its Entry handler
	// returned at the matching entry (0 without one).
	EntryData() uint64
}

// Regs is the x86-64 register file of a stopped thread.
type Regs = arch.Regs

// Fault describes a fault of the displaced instruction.
type Fault struct {
	Signal syscall.Signal
	Code   int    // si_code
	Addr   uint64 // si_addr
	// TrapNo is the x86 exception vector the fault came from, derived
	// from the signal and si_code (14 page fault, 13 general protection,
	// 0 divide error, 6 invalid opcode, 17 alignment check, 16/19 x87/SIMD
	// floating point; -1 when unknown).
	TrapNo int
}

// Handlers are the Go functions run on a hit. Any may be nil.
type Handlers struct {
	// Pre runs when the probed instruction is reached, before it runs.
	// If it sets Regs().Rip to another address than Addr(), the probed
	// instruction is skipped and the thread continues there.
	Pre func(ctx Context)
	// Post runs after the displaced instruction has run (Regs().Rip is
	// where the program continues). Its presence costs a second stop.
	Post func(ctx Context)
	// Fault runs when the displaced instruction faults. Returning true
	// means the handler dealt with it: the signal is not delivered and
	// the thread continues at Regs().Rip (the instruction after the
	// probed one if the handler left rip on the faulting instruction).
	// Returning false delivers the signal to the program at the probed
	// address, as without the probe.
	Fault func(ctx Context, f Fault) bool
	// Return runs when a return probe's function returns; Regs().Rax is
	// the return value and Regs().Rip the address returned to.
	Return func(ctx Context)
	// Entry runs, for a return probe, when its function is entered
	// (the kretprobe's entry_handler): the data it returns is what
	// Context.EntryData gives at the matching return; with track
	// false, that return is not reported (nor counted, nor handled).
	Entry func(ctx Context) (data uint64, track bool)
}
