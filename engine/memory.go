package engine

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// memory reads and writes one address space.
//
// Reads use process_vm_readv (no file offset state, one call per range).
// Writes go through /proc/PID/mem, which (unlike process_vm_writev) can
// write read-only text: the kernel forces the write with copy-on-write.
type memory struct {
	pid   int
	memFD *os.File
	// iovecs reused by reads to keep the hot path allocation-free.
	local  [1]unix.Iovec
	remote [1]unix.RemoteIovec
	// word is the buffer of ReadUint64 and WriteUint64.
	word [8]byte
	// The same for vector reads (ReadMemoryVector).
	vlocal  [maxVector]unix.Iovec
	vremote [maxVector]unix.RemoteIovec
}

// maxVector is the most ranges one ReadMemoryVector reads; more are
// read in further calls.
const maxVector = 16

func openMemory(pid int) (*memory, error) {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open memory of process %d: %w", pid, err)
	}
	return &memory{pid: pid, memFD: f}, nil
}

func (m *memory) close() error {
	if m == nil || m.memFD == nil {
		return nil
	}
	err := m.memFD.Close()
	m.memFD = nil
	return err
}

// ReadMemory reads len(p) bytes at addr, returning how many it could read.
func (m *memory) ReadMemory(addr uint64, p []byte) (int, error) {
	n, err := m.ReadUser(addr, p)
	if err != nil {
		// process_vm_readv refuses some mappings (PROT_NONE guard
		// pages are refused by both); /proc/PID/mem reads what ptrace can.
		n, err = m.memFD.ReadAt(p, int64(addr))
		if n > 0 {
			return n, nil
		}
		return 0, fmt.Errorf("read %d bytes at 0x%x of process %d: %w", len(p), addr, m.pid, err)
	}
	return n, nil
}

// ReadUser reads len(p) bytes at addr as the program could read them:
// process_vm_readv alone, which refuses what the program cannot read
// (PROT_NONE pages), where ReadMemory goes on through /proc/PID/mem,
// which reads what ptrace can.
func (m *memory) ReadUser(addr uint64, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	m.local[0] = unix.Iovec{Base: &p[0]}
	m.local[0].SetLen(len(p))
	m.remote[0] = unix.RemoteIovec{Base: uintptr(addr), Len: len(p)}
	n, err := unix.ProcessVMReadv(m.pid, m.local[:], m.remote[:], 0)
	if err != nil {
		return 0, fmt.Errorf("read %d bytes at 0x%x of process %d: %w", len(p), addr, m.pid, err)
	}
	return n, nil
}

// ReadMemoryVector reads bufs[i] at addrs[i] for each i with one
// process_vm_readv (per maxVector ranges) and returns the bytes read in
// all; the kernel stops at the first range it cannot read whole. Unlike
// ReadMemory it has no /proc/PID/mem fallback: callers read the ranges
// it did not one by one.
func (m *memory) ReadMemoryVector(addrs []uint64, bufs [][]byte) (int, error) {
	total := 0
	for len(addrs) > 0 {
		k, want := 0, 0
		for ; k < len(addrs) && k < maxVector; k++ {
			if len(bufs[k]) == 0 {
				m.vlocal[k] = unix.Iovec{}
			} else {
				m.vlocal[k] = unix.Iovec{Base: &bufs[k][0]}
				m.vlocal[k].SetLen(len(bufs[k]))
			}
			m.vremote[k] = unix.RemoteIovec{Base: uintptr(addrs[k]), Len: len(bufs[k])}
			want += len(bufs[k])
		}
		n, err := unix.ProcessVMReadv(m.pid, m.vlocal[:k], m.vremote[:k], 0)
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, fmt.Errorf("read %d ranges of process %d: %w", k, m.pid, err)
		}
		total += n
		if n < want {
			return total, nil
		}
		addrs, bufs = addrs[k:], bufs[k:]
	}
	return total, nil
}

// WriteMemory writes p at addr, also into read-only text.
func (m *memory) WriteMemory(addr uint64, p []byte) (int, error) {
	n, err := m.memFD.WriteAt(p, int64(addr))
	if err != nil {
		return n, fmt.Errorf("write %d bytes at 0x%x of process %d: %w", len(p), addr, m.pid, err)
	}
	return n, nil
}

// readFull reads exactly len(p) bytes or fails.
func (m *memory) readFull(addr uint64, p []byte) error {
	n, err := m.ReadMemory(addr, p)
	if err != nil {
		return err
	}
	if n != len(p) {
		return fmt.Errorf("short read of %d/%d bytes at 0x%x of process %d", n, len(p), addr, m.pid)
	}
	return nil
}

// ReadUint64 reads the 8-byte word at addr into m's own buffer: a
// caller's would escape through the iovec to the heap (arch.WordMemory).
func (m *memory) ReadUint64(addr uint64) (uint64, error) {
	if err := m.readFull(addr, m.word[:]); err != nil {
		return 0, err
	}
	return *(*uint64)(unsafe.Pointer(&m.word[0])), nil
}

// WriteUint64 writes the 8-byte word v at addr (arch.WordMemory).
func (m *memory) WriteUint64(addr, v uint64) error {
	*(*uint64)(unsafe.Pointer(&m.word[0])) = v
	_, err := m.WriteMemory(addr, m.word[:])
	return err
}
