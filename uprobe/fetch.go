package uprobe

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/ptprobe/ptprobe/arch"
)

// Symbolizer is a FetchContext that names addresses, for symstr: as
// "name+0xoff/0xsize", or "0x..." when no function holds the address.
// A FetchContext that is none gives "0x..." always.
type Symbolizer interface {
	Symbolize(addr uint64) string
}

// FetchContext is what evaluating a fetch-arg needs of a stopped thread.
// Context satisfies it.
type FetchContext interface {
	Regs() *Regs
	// ReadMemory reads len(p) bytes at addr and returns how many it
	// read. A read that reaches unmapped memory may return a short count
	// or none at all (process_vm_readv fails whole); Fetch copes with
	// both.
	ReadMemory(addr uint64, p []byte) (int, error)
	Comm() string
	FileBase() uint64
}

const (
	// MaxStringLen is the longest string a fetch-arg returns: the
	// kernel's MAX_STRING_SIZE (PATH_MAX) less the NUL. Longer strings
	// are cut to it and marked Truncated (the kernel shows them as
	// "(fault)").
	MaxStringLen = 4095
	// stringChunk is the first read of a string: most strings end
	// within it, and it rarely crosses a page.
	stringChunk = 256
	// pageSize is where a read may stop being readable.
	pageSize = 4096
	// maxEvalDepth bounds the evaluation of hand-built expressions (a
	// parsed one has at most maxDeref levels); deeper ones fault.
	maxEvalDepth = 64
)

// EntryRegisters is a FetchContext at a function's return that knows the
// registers it had at its entry, for OpEntryReg (a return probe's $argN).
type EntryRegisters interface {
	// EntryReg is the value r had at the entry; false when the entry
	// was not seen (the function was entered before the probe was
	// armed).
	EntryReg(r arch.Reg) (uint64, bool)
}

// VectorReader is a FetchContext that can read several ranges of memory
// in one call, as process_vm_readv does with several iovecs. FetchArgs
// then reads the memory of all the fetch-args whose address takes no
// other read (+8(%si), @sym, $stack3, a string's first bytes) in one
// call instead of one each.
type VectorReader interface {
	// ReadMemoryVector reads bufs[i] at addrs[i] for each i, in order,
	// and returns the number of bytes read in all: the ranges before
	// the first one that could not be read whole were read whole.
	ReadMemoryVector(addrs []uint64, bufs [][]byte) (int, error)
}

const (
	// maxPrefetch bounds the ranges FetchArgs reads in one call, and
	// prefetchBytes their total size.
	maxPrefetch   = 16
	prefetchBytes = 2048
)

// scratch is the buffer memory reads land in. Buffers passed through the
// FetchContext interface escape, so a stack array would be a heap
// allocation per read; a pooled one is not.
type scratch struct {
	b [MaxStringLen + 1]byte
	// The ranges FetchArgs read ahead: preBuf[i] (a slice of pre) holds
	// the bytes at preAddr[i].
	pre     [prefetchBytes]byte
	preAddr [maxPrefetch]uint64
	preBuf  [maxPrefetch][]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// fetcher evaluates fetch expressions on one context, getting a scratch
// buffer only when memory is read.
type fetcher struct {
	ctx FetchContext
	sc  *scratch
	pre int // ranges of sc read ahead, whole
}

func (f *fetcher) scratch() *scratch {
	if f.sc == nil {
		f.sc = scratchPool.Get().(*scratch)
	}
	return f.sc
}

func (f *fetcher) buf() []byte { return f.scratch().b[:] }

func (f *fetcher) release() {
	if f.sc != nil {
		scratchPool.Put(f.sc)
		f.sc, f.pre = nil, 0
	}
}

// prefetch reads, in one call, the memory that the args will read first
// and whose address takes no other read. Fewer than two such ranges are
// left to the args' own reads.
func (f *fetcher) prefetch(vr VectorReader, args []FetchArg) {
	var addrs [maxPrefetch]uint64
	var sizes [maxPrefetch]int
	k, used := 0, 0
	for i := range args {
		addr, size, ok := f.firstRead(&args[i])
		if !ok || k == maxPrefetch || used+size > prefetchBytes {
			continue
		}
		addrs[k], sizes[k] = addr, size
		k++
		used += size
	}
	if k < 2 {
		return
	}
	sc := f.scratch()
	used = 0
	for i := range k {
		sc.preAddr[i] = addrs[i]
		sc.preBuf[i] = sc.pre[used : used+sizes[i] : used+sizes[i]]
		used += sizes[i]
	}
	n, err := vr.ReadMemoryVector(sc.preAddr[:k], sc.preBuf[:k])
	if err != nil {
		return
	}
	for f.pre < k && n >= len(sc.preBuf[f.pre]) {
		n -= len(sc.preBuf[f.pre])
		f.pre++
	}
}

// firstRead is the range of memory arg a reads first, when its address
// can be had from the registers alone: a string's first chunk (up to its
// page's end, so that an unreadable next page does not fail the batch),
// or an integer's bytes.
func (f *fetcher) firstRead(a *FetchArg) (addr uint64, size int, ok bool) {
	e := a.Expr
	switch {
	case e == nil:
		return 0, 0, false
	case e.Op == OpStackN:
		regs := f.ctx.Regs()
		if regs == nil || a.Type.Kind == String {
			return 0, 0, false
		}
		return regs.Rsp + 8*uint64(e.Imm), 8, true
	case e.Op == OpAddr || e.Op == OpFileOffset:
	case e.Op == OpDeref && e.Inner != nil && !e.Inner.Op.isMemory() && e.Inner.Op != OpStackN:
	default:
		return 0, 0, false
	}
	if addr, ok = f.addr(e, 0); !ok {
		return 0, 0, false
	}
	if a.Type.Kind == String {
		return addr, min(stringChunk, pageSize-int(addr%pageSize)), true
	}
	return addr, typeSize(a.Type), true
}

// cached copies into p what was read ahead at addr and returns how many
// bytes it copied (0: nothing read ahead there).
func (f *fetcher) cached(addr uint64, p []byte) int {
	for i := 0; i < f.pre; i++ {
		a, b := f.sc.preAddr[i], f.sc.preBuf[i]
		if addr >= a && addr-a < uint64(len(b)) {
			return copy(p, b[addr-a:])
		}
	}
	return 0
}

// Fetch evaluates the argument on a stopped thread. A failed memory read
// gives a Value with Fault set; Fetch never fails otherwise.
//
// As in the kernel, intermediate values (the addresses a dereference
// reads at) are 64-bit words; only the outermost access reads the type's
// size, and register and stack values are truncated to it. Signed values
// are sign-extended into U. A string is read at the address of the
// outermost memory access up to its NUL, at most MaxStringLen bytes; a
// string that runs into unreadable memory before its NUL faults, as
// strncpy_from_user does in the kernel.
//
// Fetch does not allocate, except for the bytes of a string fetched from
// memory.
func (a *FetchArg) Fetch(ctx FetchContext) Value {
	f := fetcher{ctx: ctx}
	v := f.fetch(a)
	f.release()
	return v
}

// FetchArgs appends the values of all of the spec's fetch-args to dst,
// in order, and returns the extended slice. It is Fetch for each arg
// sharing one scratch buffer.
//
// With a VectorReader, the first memory read of each arg whose address
// takes no other read is done for all of them in one call.
func (s *Spec) FetchArgs(ctx FetchContext, dst []Value) []Value {
	return FetchArgs(ctx, s.Args, dst)
}

// FetchArgs is Spec.FetchArgs for a list of fetch-args, such as those
// Spec.Bind returns.
func FetchArgs(ctx FetchContext, args []FetchArg, dst []Value) []Value {
	f := fetcher{ctx: ctx}
	if vr, ok := ctx.(VectorReader); ok && len(args) > 1 {
		f.prefetch(vr, args)
	}
	for i := range args {
		dst = append(dst, f.fetch(&args[i]))
	}
	f.release()
	return dst
}

func (f *fetcher) fetch(a *FetchArg) Value {
	v := Value{Name: a.Name, Type: a.Type}
	e := a.Expr
	if e == nil {
		v.Fault = true
		return v
	}
	if a.Type.Sym {
		// symstr: the value, named.
		var u uint64
		var ok bool
		if e.Op.isMemory() {
			var addr uint64
			if addr, ok = f.addr(e, 0); ok {
				u, ok = f.readUint(addr, 8)
			}
		} else {
			u, ok = f.value(e, 0)
		}
		if !ok {
			v.Fault = true
			return v
		}
		if sy, isSym := f.ctx.(Symbolizer); isSym {
			v.S = sy.Symbolize(u)
		} else {
			v.S = "0x" + strconv.FormatUint(u, 16)
		}
		return v
	}
	if a.Len != nil && a.Type.Len > 0 {
		f.fetchSlice(a, &v)
		return v
	}
	if a.Type.Kind == String {
		if e.Op == OpComm {
			v.S = f.ctx.Comm()
			return v
		}
		if e.Op == OpImmString {
			v.S = e.Sym
			return v
		}
		addr, ok := f.addr(e, 0)
		switch {
		case ok && a.Type.Len > 0:
			// string[N]: N pointers at the address, each to a string.
			v.Strs = make([]string, a.Type.Len)
			for i := range v.Strs {
				var p uint64
				var cut bool
				if p, ok = f.readUint(addr+uint64(8*i), 8); !ok {
					break
				}
				if v.Strs[i], cut, ok = f.readString(p); !ok {
					break
				}
				v.Truncated = v.Truncated || cut
			}
			if !ok {
				v.Strs, v.Truncated = nil, false
			}
		case ok && a.Len != nil:
			var n uint64
			if n, ok = f.value(a.Len, 0); ok {
				v.S, v.Truncated, ok = f.readCounted(addr, n)
			}
		case ok:
			v.S, v.Truncated, ok = f.readString(addr)
		}
		v.Fault = !ok
		return v
	}

	size := typeSize(a.Type)
	if a.Type.Len > 0 {
		// An array: Len elements of the type at the address.
		addr, ok := f.addr(e, 0)
		if !ok {
			v.Fault = true
			return v
		}
		v.Elems = make([]uint64, a.Type.Len)
		for i := range v.Elems {
			u, ok := f.readUint(addr+uint64(i*size), size)
			if !ok {
				v.Fault, v.Elems = true, nil
				return v
			}
			v.Elems[i] = convert(u, a.Type, size)
		}
		return v
	}
	var u uint64
	var ok bool
	if e.Op.isMemory() {
		var addr uint64
		if addr, ok = f.addr(e, 0); ok {
			u, ok = f.readUint(addr, size)
		}
	} else {
		u, ok = f.value(e, 0)
	}
	if !ok {
		v.Fault = true
		return v
	}
	v.U = convert(u, a.Type, size)
	return v
}

// fetchSlice fetches a Go slice: its length, then at most Type.Len of
// its first elements from its array, each a scalar of the type or, for
// a String, a Go string (a pointer, then a length). An element string
// cut at MaxStringLen marks the value Truncated.
func (f *fetcher) fetchSlice(a *FetchArg, v *Value) {
	n, ok := f.value(a.Len, 0)
	if !ok {
		v.Fault = true
		return
	}
	v.Slice, v.Count = true, n
	k := min(n, uint64(a.Type.Len))
	if k == 0 {
		return // a nil slice's array is at 0: nothing to read
	}
	addr, ok := f.addr(a.Expr, 0)
	if !ok {
		v.Fault = true
		return
	}
	if a.Type.Kind == String {
		v.Strs = make([]string, 0, k)
		for i := uint64(0); i < k; i++ {
			p, ok1 := f.readUint(addr+16*i, 8)
			l, ok2 := f.readUint(addr+16*i+8, 8)
			if !ok1 || !ok2 {
				v.Fault, v.Strs = true, nil
				return
			}
			s, cut, ok := f.readCounted(p, l)
			if !ok {
				v.Fault, v.Strs = true, nil
				return
			}
			v.Strs = append(v.Strs, s)
			v.Truncated = v.Truncated || cut
		}
		return
	}
	size := typeSize(a.Type)
	v.Elems = make([]uint64, k)
	for i := range v.Elems {
		u, ok := f.readUint(addr+uint64(i*size), size)
		if !ok {
			v.Fault, v.Elems = true, nil
			return
		}
		v.Elems[i] = convert(u, a.Type, size)
	}
}

// convert truncates u to the type's size (sign-extended for Signed) and
// takes a bitfield's bits out of it (sign-extended from its top bit for
// a Signed one: a USDT argument -1@%ah, which no kernel grammar writes).
func convert(u uint64, t Type, size int) uint64 {
	switch {
	case t.BitWidth > 0:
		mask := uint64(1)<<uint(t.BitWidth) - 1
		v := u >> uint(t.BitOffset) & mask
		if t.Kind == Signed && v>>uint(t.BitWidth-1)&1 == 1 {
			v |= ^mask
		}
		return v
	case t.Kind == Signed:
		return signExtend(u, size)
	}
	return u & sizeMask(size)
}

// value is the 64-bit value of e.
func (f *fetcher) value(e *Expr, depth int) (uint64, bool) {
	if e == nil || depth > maxEvalDepth {
		return 0, false
	}
	switch e.Op {
	case OpImm:
		return uint64(e.Imm), true
	case OpAddr, OpFileOffset, OpDeref:
		addr, ok := f.addr(e, depth)
		if !ok {
			return 0, false
		}
		return f.readUint(addr, 8)
	case OpStackN:
		regs := f.ctx.Regs()
		if regs == nil {
			return 0, false
		}
		return f.readUint(regs.Rsp+8*uint64(e.Imm), 8)
	}
	regs := f.ctx.Regs()
	if regs == nil {
		return 0, false
	}
	switch e.Op {
	case OpReg:
		return e.Reg.Get(regs), true
	case OpStack:
		return regs.Rsp, true
	case OpIndexed:
		var base uint64
		if e.Inner != nil {
			v, ok := f.value(e.Inner, depth+1)
			if !ok {
				return 0, false
			}
			base = v
		}
		return base + e.Reg.Get(regs)*uint64(e.Imm), true
	case OpRetval:
		return regs.Rax, true
	case OpArgN:
		// Not bound (Spec.Bind): the SysV registers.
		if e.Imm < 1 || e.Imm > int64(len(arch.ArgRegs)) {
			return 0, false
		}
		return arch.ArgRegs[e.Imm-1].Get(regs), true
	case OpEntryReg:
		if er, ok := f.ctx.(EntryRegisters); ok {
			return er.EntryReg(e.Reg)
		}
		return 0, false
	}
	// OpComm has no integer value (Parse refuses it), and OpSymbol, a
	// kernel symbol that only the kernel binds, no address here.
	return 0, false
}

// addr is the address a memory node reads at.
func (f *fetcher) addr(e *Expr, depth int) (uint64, bool) {
	switch e.Op {
	case OpAddr:
		return uint64(e.Imm), true
	case OpFileOffset:
		return f.ctx.FileBase() + uint64(e.Imm), true
	case OpDeref:
		base, ok := f.value(e.Inner, depth+1)
		return base + uint64(e.Imm), ok
	}
	return 0, false
}

// readCounted reads a string of n bytes at addr (a Go string's bytes),
// at most MaxStringLen of them.
func (f *fetcher) readCounted(addr, n uint64) (s string, truncated, ok bool) {
	if n > MaxStringLen {
		n, truncated = MaxStringLen, true
	}
	if n == 0 {
		return "", truncated, true
	}
	b := f.buf()[:n]
	if got := f.readAvail(addr, b); got < len(b) {
		return "", false, false
	}
	return string(b), truncated, true
}

// readUint reads a little-endian integer of size bytes (1..8) at addr.
func (f *fetcher) readUint(addr uint64, size int) (uint64, bool) {
	p := f.buf()[:size]
	if f.cached(addr, p) < size {
		if n, _ := f.ctx.ReadMemory(addr, p); n < size {
			return 0, false
		}
	}
	var u uint64
	for i := size - 1; i >= 0; i-- {
		u = u<<8 | uint64(p[i])
	}
	return u, true
}

// readString reads the NUL-terminated string at addr: a first chunk, then
// chunks twice as big, so a short string costs one read and the longest
// a few, never a read per byte. It reads up to MaxStringLen+1 bytes, the
// NUL of a string of exactly MaxStringLen bytes included: a string with
// no NUL in them is longer, and comes back cut to MaxStringLen bytes
// with truncated set.
func (f *fetcher) readString(addr uint64) (s string, truncated, ok bool) {
	buf := f.buf()
	n, chunk := 0, stringChunk
	if got := f.cached(addr, buf[:stringChunk]); got > 0 {
		if i := bytes.IndexByte(buf[:got], 0); i >= 0 {
			return string(buf[:i]), false, true
		}
		// No NUL in the chunk (which may end early, at a page's
		// end): go on after it.
		n, chunk = got, 2*stringChunk
	}
	for n < len(buf) {
		want := min(chunk, len(buf)-n)
		got := f.readAvail(addr+uint64(n), buf[n:n+want])
		if i := bytes.IndexByte(buf[n:n+got], 0); i >= 0 {
			return string(buf[:n+i]), false, true
		}
		n += got
		if got < want {
			return "", false, false // unreadable before the NUL
		}
		chunk *= 2
	}
	return string(buf[:MaxStringLen]), true, true
}

// readAvail reads what is readable of p at addr, from its start: when the
// whole read comes up short (it crossed into unmapped memory, and some
// readers then return nothing at all) the rest is read again page by
// page, up to the first page that cannot be read.
func (f *fetcher) readAvail(addr uint64, p []byte) int {
	n, _ := f.ctx.ReadMemory(addr, p)
	if n >= len(p) {
		return len(p)
	}
	n = max(n, 0)
	for n < len(p) {
		a := addr + uint64(n)
		end := min(len(p), n+int(pageSize-a%pageSize))
		m, _ := f.ctx.ReadMemory(a, p[n:end])
		if m <= 0 {
			break
		}
		n += min(m, end-n)
		if n < end {
			break
		}
	}
	return n
}

// typeSize is the size an integer type reads; hand-built Types with a
// size outside 1..8 read 8.
func typeSize(t Type) int {
	if t.Size < 1 || t.Size > 8 {
		return 8
	}
	return t.Size
}

// sizeMask is the mask of the low size bytes.
func sizeMask(size int) uint64 {
	if size < 1 || size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(size)) - 1
}

// signExtend extends the low size bytes of u as a signed number.
func signExtend(u uint64, size int) uint64 {
	if size < 1 || size >= 8 {
		return u
	}
	shift := 64 - 8*uint(size)
	return uint64(int64(u<<shift) >> shift)
}
