package engine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/internal/recorder"
	"github.com/ptprobe/ptprobe/uprobe"
)

// The records of the no-stop path and what they hold: the registers of the
// hit and the memory its fetch-args read, recorded by the recorder as the
// plans of the site's descriptor say. ptprobe evaluates the fetch-args on
// a record with the same code as on a stopped thread (uprobe.FetchArgs),
// so the events are those of the stop path.

// readPlan is the memory one fetch-arg reads: a chain of 8-byte reads
// from a base (a register, or an address), then a last read.
type readPlan struct {
	base   uint8  // index in the record's registers, or recorder.PAbs
	abs    uint64 // the base, when base is PAbs
	offs   []int64
	str    bool // the last read is a string
	size   int  // of the last read, for an integer
	nderef int  // reads before the last
}

// recordRegs is the order of the registers in a record.
var recordRegs = [recorder.NRegs]arch.Reg{arch.RAX, arch.RBX, arch.RCX, arch.RDX, arch.RSI, arch.RDI, arch.RBP, arch.RSP,
	arch.R8, arch.R9, arch.R10, arch.R11, arch.R12, arch.R13, arch.R14, arch.R15, arch.RFLAGS}

// regIndex is r's index in a record, -1 if a record lacks it.
func regIndex(r arch.Reg) int {
	for i, x := range recordRegs {
		if x == r {
			return i
		}
	}
	return -1
}

// errNotRecordable: a fetch-arg the recorder cannot gather what it needs
// for; the probe takes the stop path.
var errNotRecordable = errors.New("not recordable without a stop")

// plansFor compiles what the fetch-args read into read plans; fileBase is
// the address of the probed file's offset 0 in the process (@+OFFSET).
func plansFor(args []uprobe.FetchArg, fileBase uint64) ([]readPlan, error) {
	var plans []readPlan
	for i := range args {
		a := &args[i]
		e := a.Expr
		if e == nil {
			continue
		}
		var p readPlan
		switch {
		case a.Type.Len > 0:
			// A record holds one value of each read: an array
			// (docs/DESIGN.md §9) takes the stop path.
			return nil, fmt.Errorf("%s: an array: %w", a.Text, errNotRecordable)
		case a.Type.Sym:
			// symstr: the name is looked up in the maps and the
			// mapped file's symbols, on the ptrace thread.
			return nil, fmt.Errorf("%s: symstr: %w", a.Text, errNotRecordable)
		case a.Len != nil:
			// A counted string (a Go string, docs/DESIGN.md §10): the
			// recorder reads strings to their NUL.
			return nil, fmt.Errorf("%s: %w", a.Text, errNotRecordable)
		case a.Type.Kind == uprobe.String && e.Op == uprobe.OpComm:
			continue // the thread's name: ptprobe reads it
		case e.Op == uprobe.OpStackN:
			p = readPlan{base: uint8(regIndex(arch.RSP)), offs: []int64{8 * e.Imm}, size: 8}
			if a.Type.Kind == uprobe.String {
				return nil, fmt.Errorf("%s: %w", a.Text, errNotRecordable)
			}
			plans = append(plans, p)
			continue
		case !isMemoryOp(e.Op):
			if e.Op == uprobe.OpReg && regIndex(e.Reg) < 0 && e.Reg != arch.RIP {
				return nil, fmt.Errorf("%s: register %s: %w", a.Text, e.Reg.KernelName(), errNotRecordable)
			}
			if e.Op == uprobe.OpEntryReg {
				return nil, fmt.Errorf("%s: %w", a.Text, errNotRecordable)
			}
			continue // registers, $stack, $comm: in the record
		}
		// A memory node: the chain of its inner nodes, innermost first.
		var chain []*uprobe.Expr
		for n := e; n != nil && n.Op == uprobe.OpDeref; n = n.Inner {
			chain = append(chain, n)
		}
		base := e
		if len(chain) > 0 {
			base = chain[len(chain)-1].Inner
		}
		p.offs = make([]int64, 0, len(chain)+1)
		switch {
		case base == nil:
			return nil, fmt.Errorf("%s: %w", a.Text, errNotRecordable)
		case base.Op == uprobe.OpAddr:
			p.base, p.abs = recorder.PAbs, uint64(base.Imm)
		case base.Op == uprobe.OpFileOffset:
			p.base, p.abs = recorder.PAbs, fileBase+uint64(base.Imm)
		case base.Op == uprobe.OpReg && regIndex(base.Reg) >= 0:
			p.base = uint8(regIndex(base.Reg))
		case base.Op == uprobe.OpStack:
			p.base = uint8(regIndex(arch.RSP))
		case base.Op == uprobe.OpStackN:
			// $stackN is itself a read at rsp + 8N.
			p.base = uint8(regIndex(arch.RSP))
			p.offs = append(p.offs, 8*base.Imm)
		default:
			return nil, fmt.Errorf("%s: %w", a.Text, errNotRecordable)
		}
		if len(chain) > 0 && base.Op != uprobe.OpAddr && base.Op != uprobe.OpFileOffset {
			// Innermost first: each deref adds its offset to the value.
			for j := len(chain) - 1; j >= 0; j-- {
				p.offs = append(p.offs, chain[j].Imm)
			}
		} else if base.Op == uprobe.OpAddr || base.Op == uprobe.OpFileOffset {
			// @ADDR is itself a read at the address: offset 0, then
			// the chain above it.
			p.offs = append(p.offs, 0)
			for j := len(chain) - 1; j >= 0; j-- {
				p.offs = append(p.offs, chain[j].Imm)
			}
		}
		if len(p.offs) > recorder.MaxDeref+1 {
			return nil, fmt.Errorf("%s: %w", a.Text, errNotRecordable)
		}
		p.nderef = len(p.offs) - 1
		if a.Type.Kind == uprobe.String {
			p.str = true
		} else {
			p.size = a.Type.Size
			if p.size < 1 || p.size > 8 {
				p.size = 8
			}
		}
		plans = append(plans, p)
	}
	if len(plans) > recorder.MaxPlans {
		return nil, fmt.Errorf("%d memory reads: %w", len(plans), errNotRecordable)
	}
	return plans, nil
}

func isMemoryOp(op uprobe.Op) bool {
	return op == uprobe.OpDeref || op == uprobe.OpAddr || op == uprobe.OpFileOffset
}

// put writes the plan into a descriptor.
func (p *readPlan) put(b []byte) {
	le := binary.LittleEndian
	b[recorder.PBase] = p.base
	b[recorder.PNDeref] = uint8(p.nderef)
	if p.str {
		b[recorder.PString] = 1
	}
	le.PutUint32(b[recorder.PSize:], uint32(p.size))
	le.PutUint64(b[recorder.PAbsAddr:], p.abs)
	for i, o := range p.offs {
		le.PutUint64(b[recorder.POffs+8*i:], uint64(o))
	}
}

// recordLen is the room to reserve for a record with these plans.
func recordLen(plans []readPlan) int {
	n := recorder.RBlocks
	for _, p := range plans {
		n += p.nderef * (recorder.BData + 8)
		if p.str {
			n += recorder.BData + recorder.MaxString
		} else {
			n += recorder.BData + 8
		}
	}
	return n
}

// maxRecord bounds a record's length, for the drain's checks.
const maxRecord = recorder.RBlocks + recorder.MaxPlans*((recorder.MaxDeref)*(recorder.BData+8)+recorder.BData+recorder.MaxString)

// record is a decoded record: its header, registers and memory blocks.
// The bytes are the ring's, which the traced program writes: every field
// is checked before use (decodeRecord), and the blocks are read only
// within their bounds.
type record struct {
	len, site, tid, cpu, gen uint32
	tsc                      uint64
	regs                     arch.Regs
	blocks                   []block
}

type block struct {
	addr uint64
	data []byte // what could be read
}

// errBadRecord: a record that breaks the layout (the program wrote over
// its ring).
var errBadRecord = errors.New("malformed record")

// decodeRecord decodes the record at the start of b (which holds at most
// what was committed), reusing r's block slice: its header, and with body
// its registers and blocks too (not needed to count a hit).
func decodeRecord(b []byte, r *record, body bool) error {
	le := binary.LittleEndian
	if len(b) < recorder.RBlocks {
		return fmt.Errorf("%w: %d bytes", errBadRecord, len(b))
	}
	r.len = le.Uint32(b[recorder.RLen:])
	if r.len < recorder.RBlocks || r.len%8 != 0 || int(r.len) > len(b) || r.len > maxRecord {
		return fmt.Errorf("%w: length %d", errBadRecord, r.len)
	}
	b = b[:r.len]
	r.site = le.Uint32(b[recorder.RSite:])
	r.tid = le.Uint32(b[recorder.RTID:])
	n := le.Uint32(b[recorder.RNBlocks:])
	r.tsc = le.Uint64(b[recorder.RTime:])
	r.gen = le.Uint32(b[recorder.RGen:])
	r.cpu = le.Uint32(b[recorder.RCPU:])
	r.blocks = r.blocks[:0]
	if !body {
		return nil
	}
	// In recordRegs' order.
	g := b[recorder.RRegs:]
	r.regs.Rax, r.regs.Rbx, r.regs.Rcx, r.regs.Rdx = le.Uint64(g[0:]), le.Uint64(g[8:]), le.Uint64(g[16:]), le.Uint64(g[24:])
	r.regs.Rsi, r.regs.Rdi, r.regs.Rbp, r.regs.Rsp = le.Uint64(g[32:]), le.Uint64(g[40:]), le.Uint64(g[48:]), le.Uint64(g[56:])
	r.regs.R8, r.regs.R9, r.regs.R10, r.regs.R11 = le.Uint64(g[64:]), le.Uint64(g[72:]), le.Uint64(g[80:]), le.Uint64(g[88:])
	r.regs.R12, r.regs.R13, r.regs.R14, r.regs.R15 = le.Uint64(g[96:]), le.Uint64(g[104:]), le.Uint64(g[112:]), le.Uint64(g[120:])
	r.regs.Eflags = le.Uint64(g[128:])
	off := recorder.RBlocks
	for i := uint32(0); i < n; i++ {
		if off+recorder.BData > len(b) {
			return fmt.Errorf("%w: block %d past its end", errBadRecord, i)
		}
		addr := le.Uint64(b[off+recorder.BAddr:])
		want := int(le.Uint32(b[off+recorder.BWant:]))
		got := int(le.Uint32(b[off+recorder.BGot:]))
		if got > want || want > recorder.MaxString || off+recorder.BData+got > len(b) {
			return fmt.Errorf("%w: block %d of %d/%d bytes", errBadRecord, i, got, want)
		}
		r.blocks = append(r.blocks, block{addr: addr, data: b[off+recorder.BData : off+recorder.BData+got]})
		size := want
		if want == recorder.MaxString {
			size = got // a string's block is as long as what was read
		}
		off += (recorder.BData + size + 7) &^ 7
	}
	return nil
}

// recordContext is a record as the uprobe.FetchContext that fetch-args
// are evaluated on.
type recordContext struct {
	rec      *record
	comm     string
	fileBase uint64
}

func (c *recordContext) Regs() *arch.Regs { return &c.rec.regs }
func (c *recordContext) Comm() string     { return c.comm }
func (c *recordContext) FileBase() uint64 { return c.fileBase }

// ReadMemory serves what the recorder read: a read within a block gets
// its bytes, up to where the block's read stopped; a read of memory it
// did not read gets nothing (as unmapped memory does).
func (c *recordContext) ReadMemory(addr uint64, p []byte) (int, error) {
	for _, b := range c.rec.blocks {
		if addr >= b.addr && addr-b.addr <= uint64(len(b.data)) {
			n := copy(p, b.data[addr-b.addr:])
			if n == 0 && len(p) > 0 {
				continue
			}
			return n, nil
		}
	}
	return 0, errNotRecorded
}

var errNotRecorded = errors.New("memory not recorded at the hit")
