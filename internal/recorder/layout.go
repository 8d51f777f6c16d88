// Package recorder is the machine code of the no-stop path's recorder
// (recorder.S, assembled into code.go by gen.go) and the layout of the
// memory it reads and writes: an address space's area (header, thread
// table, ring) and a site's descriptor (docs/DESIGN.md §8). The constants
// here are the one source of the offsets: gen.go hands them to the
// assembler.
package recorder

//go:generate go run gen.go

// The area: one per address space, a memfd that the traced program and
// ptprobe both map. Its header, the thread table, the descriptors of the
// sites, then the ring's data, mapped twice in a row in the program so
// that no record wraps.
const (
	AHead    = 0   // u64: bytes reserved so far (producers: lock xadd)
	ATail    = 8   // u64: bytes consumed so far (ptprobe)
	AMask    = 16  // u64: ring size - 1 (a power of 2)
	ASize    = 24  // u64: ring size
	APid     = 32  // u64: the process's ID, for process_vm_readv
	ABeat    = 40  // u64: TSC of ptprobe's last heartbeat
	ADead    = 48  // u64: TSC ticks without a heartbeat after which ptprobe is gone
	AFlags   = 56  // u64: FOff, FDrop
	AGen     = 64  // u64: copied into each record (a vfork child's ID while it runs)
	ASleep   = 72  // u64: nonzero while ptprobe waits for the head to move (futex)
	ADropped = 80  // u64: records the wait for room gave up on
	AData    = 88  // u64: the program's address of the ring's data
	ASynced  = 96  // u64: ring position up to which ptprobe has done what sync sites ask (a futex)
	AKick    = 104 // u64: bumped by a sync site's record, which wakes ptprobe's drain on it (a futex)
	ATids    = 4096
	AHeader  = ATids + TCount<<TShift // the descriptors start here

	// Flags.
	FOff  = 1 // record nothing: ptprobe detached or is gone
	FDrop = 2 // when the ring is full, count the hit missed instead of waiting
)

// The thread table: TCount entries of 1<<TShift bytes, open addressing on
// fs_base (each thread's own: glibc and musl give each its TLS block).
const (
	TCount = 256
	TShift = 5
	TFS    = 0  // u64: fs_base, 0 for a free entry
	TTID   = 8  // u64: the thread's ID
	TBusy  = 16 // u64: the thread is in the recorder (a signal handler nested in it does not wait)
)

// A site's descriptor, written by ptprobe: what to record at that site.
const (
	DArea   = 0  // u64: the area's address
	DSite   = 8  // u32: the site's ID in ptprobe's books
	DRecLen = 12 // u32: bytes to reserve for a record (a multiple of 8)
	DNPlans = 16 // u32: read plans
	DSync   = 20 // u32: nonzero: a sync site, whose thread waits until ptprobe has handled its record (ASynced)
	DMissed = 24 // u64: hits not recorded (drop mode, nested)
	DPlans  = 32 // PSizeof each

	MaxPlans = 16
	DSizeof  = DPlans + MaxPlans*PSizeof
)

// A read plan: the memory a fetch-arg reads, as a chain of 8-byte reads
// from a base and a last read of an integer or a string.
const (
	PBase    = 0  // u8: register index in RRegs (0..16), or PAbs
	PNDeref  = 1  // u8: 8-byte reads before the last one
	PString  = 2  // u8: the last read is a string
	PSize    = 4  // u32: size of the last read of an integer (1..8)
	PAbsAddr = 8  // u64: the base when PBase is PAbs
	POffs    = 16 // i64 [MaxDeref+1]: added before each read
	PSizeof  = POffs + (MaxDeref+1)*8

	PAbs     = 17
	MaxDeref = 14 // the parser's bound
)

// A record in the ring.
const (
	RLen     = 0  // u32: its bytes, reserved; written last (0: not complete)
	RSite    = 4  // u32
	RTID     = 8  // u32
	RNBlocks = 12 // u32
	RTime    = 16 // u64: TSC (rdtscp)
	RGen     = 24 // u32: the area's AGen when recorded
	RCPU     = 28 // u32: the CPU, rdtscp's TSC_AUX (cpu | node<<12)
	RRegs    = 32 // u64 [17]: rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rflags
	RBlocks  = RRegs + NRegs*8

	NRegs = 17
)

// A block of memory read at the hit.
const (
	BAddr = 0  // u64
	BWant = 8  // u32
	BGot  = 12 // u32: what could be read (a string: up to and with its NUL)
	BData = 16

	// MaxString is the most a string read takes: the kernel's
	// MAX_STRING_SIZE, one more than uprobe.MaxStringLen so that a
	// string cut there is told from one that ends there.
	MaxString = 4096
)

// The recorder's scratch slots, below its frame pointer.
const (
	STID     = -8
	SEntry   = -16
	SOut     = -24
	SPlan    = -32
	SLeft    = -40
	SVal     = -48
	SLevel   = -56
	SAddr    = -64
	SGot     = -72
	SChunk   = -80
	SDest    = -88
	SIovL    = -112 // struct iovec, 16 bytes
	SIovR    = -128
	SEnd     = -136 // a sync site's record's end in the ring
	STs      = -152 // struct timespec, 16 bytes
	SScratch = 160
)

// WSync is how long, in ns, a sync site's thread sleeps on ASynced
// between looks at ptprobe's heartbeat.
const WSync = 2_000_000
