// Package ustack records the user call stack of a thread at a probe hit
// and names its frames, for --stack, folded stacks and a script's
// ev.stack (docs/DESIGN.md §11).
//
// The stack is walked by frame pointers (the saved %rbp chain), as
// bpftrace's ustack and perf's default call graph do: code built
// without them (gcc -O2 leaves them out on x86-64) shows the probed
// function and its caller, and the walk stops where a saved %rbp does
// not point up the stack.
//
// ustack imports elfsym and uprobe.
package ustack

import (
	"fmt"
	"sync"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
)

// MaxDepth bounds a recorded stack.
const MaxDepth = 64

// maxFrameSpan bounds the distance between two saved frame pointers: a
// value further up is not a frame of this stack.
const maxFrameSpan = 8 << 20

// Recorder records stacks in the handlers of the probes it is given to
// (they run while the thread is stopped) for the event of the same hit
// to take.
type Recorder struct {
	mu    sync.Mutex
	byTID map[int][]uint64
	buf   [16]byte
}

// NewRecorder returns a Recorder.
func NewRecorder() *Recorder { return &Recorder{byTID: map[int][]uint64{}} }

// Handlers are the handlers that record the stack at a probe of kind:
// Pre at an entry, Return at a return.
func (r *Recorder) Handlers(kind uprobe.Kind) uprobe.Handlers {
	if kind == uprobe.Return {
		return uprobe.Handlers{Return: r.record}
	}
	return uprobe.Handlers{Pre: r.record}
}

// record walks ctx's stack: the probed function, then its return
// address (at an entry the word at %rsp; at a return %rip, where it
// returns to), then the return addresses of the saved frame pointers.
func (r *Recorder) record(ctx uprobe.Context) {
	regs := ctx.Regs()
	r.mu.Lock()
	defer r.mu.Unlock()
	pcs := r.byTID[ctx.TID()][:0]
	pcs = append(pcs, ctx.Addr())
	if regs.Rip != ctx.Addr() {
		pcs = append(pcs, regs.Rip) // a return: the caller
	} else if ret, ok := r.word(ctx, regs.Rsp); ok {
		pcs = append(pcs, ret)
	}
	fp := regs.Rbp
	for len(pcs) < MaxDepth && fp > regs.Rsp && fp-regs.Rsp < maxFrameSpan && fp%8 == 0 {
		next, ok1 := r.word(ctx, fp)
		ret, ok2 := r.word(ctx, fp+8)
		if !ok1 || !ok2 || ret == 0 {
			break
		}
		pcs = append(pcs, ret)
		if next <= fp {
			break
		}
		fp = next
	}
	r.byTID[ctx.TID()] = pcs
}

func (r *Recorder) word(ctx uprobe.Context, addr uint64) (uint64, bool) {
	n, err := ctx.ReadMemory(addr, r.buf[:8])
	if err != nil || n != 8 {
		return 0, false
	}
	b := r.buf[:8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56, true
}

// Take returns the stack recorded last for thread tid (innermost frame
// first) and forgets it; nil when none was. The slice is valid until
// the thread's next hit.
func (r *Recorder) Take(tid int) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	pcs := r.byTID[tid]
	if len(pcs) == 0 {
		return nil
	}
	r.byTID[tid] = pcs[:0]
	return pcs
}

// Symbolizer names code addresses of processes: FUNCTION (the ELF
// symbol of the mapped file), or FILE+0xOFFSET where no symbol covers
// the address. The process must be alive (its /proc/PID/maps is read).
type Symbolizer struct {
	maps  map[int][]elfsym.Mapping
	files map[string]*elfsym.File // nil: the file could not be opened
}

// NewSymbolizer returns a Symbolizer; Close closes its files.
func NewSymbolizer() *Symbolizer {
	return &Symbolizer{maps: map[int][]elfsym.Mapping{}, files: map[string]*elfsym.File{}}
}

// Names appends the names of pcs (innermost first) in process pid. The
// first is the probed address itself; the others are return addresses,
// named by the call before them.
func (s *Symbolizer) Names(dst []string, pid int, pcs []uint64) []string {
	for i, pc := range pcs {
		at := pc
		if i > 0 && at > 0 {
			at-- // inside the call instruction, not after it
		}
		dst = append(dst, s.name(pid, at))
	}
	return dst
}

func (s *Symbolizer) name(pid int, addr uint64) string {
	m, ok := s.mapping(pid, addr, false)
	if !ok {
		if m, ok = s.mapping(pid, addr, true); !ok {
			return fmt.Sprintf("0x%x", addr)
		}
	}
	off, _ := m.FileOffsetOf(addr)
	f := s.file(m.Path)
	if f != nil {
		if vaddr, err := f.Vaddr(off); err == nil {
			if _, _, name, ok := f.Function(vaddr); ok && name != "" {
				return name
			}
		}
	}
	return fmt.Sprintf("%s+0x%x", m.Path, off)
}

// mapping finds the executable mapping of addr, reading the maps again
// when reread (a library loaded since, an exec).
func (s *Symbolizer) mapping(pid int, addr uint64, reread bool) (elfsym.Mapping, bool) {
	ms, ok := s.maps[pid]
	if !ok || reread {
		ms, _ = elfsym.ReadMaps(pid)
		s.maps[pid] = ms
	}
	for _, m := range ms {
		if m.Exec() && addr >= m.Start && addr < m.End && m.Path != "" && m.Path[0] == '/' {
			return m, true
		}
	}
	return elfsym.Mapping{}, false
}

func (s *Symbolizer) file(path string) *elfsym.File {
	f, ok := s.files[path]
	if !ok {
		f, _ = elfsym.Open(path)
		s.files[path] = f
	}
	return f
}

// Close closes the files opened.
func (s *Symbolizer) Close() error {
	for _, f := range s.files {
		if f != nil {
			f.Close()
		}
	}
	clear(s.files)
	return nil
}
