// Package arch knows the x86-64 instruction set as far as a probe engine
// needs it: register names, instruction decoding with guards around the
// decoder's known gaps, the classification of an instruction as relocatable,
// emulated or refused, relocation into an out-of-line slot, and emulation of
// the control transfers that cannot run out of line.
//
// arch imports nothing of this module.
package arch

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Regs is the register file of a stopped thread, the kernel's
// user_regs_struct as PTRACE_GETREGS returns it.
type Regs = unix.PtraceRegs

// Reg names one field of Regs.
type Reg int

// The registers of Regs, in no particular order.
const (
	RAX Reg = iota
	RBX
	RCX
	RDX
	RSI
	RDI
	RBP
	RSP
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
	RIP
	RFLAGS
	CS
	SS
	DS
	ES
	FS
	GS
	FSBase
	GSBase
	OrigRAX
	numRegs
)

// kernelNames are the names the kernel's fetch-arg parser accepts for x86-64
// (regs_query_register_offset), indexed by Reg.
var kernelNames = [numRegs]string{
	RAX: "ax", RBX: "bx", RCX: "cx", RDX: "dx", RSI: "si", RDI: "di",
	RBP: "bp", RSP: "sp", R8: "r8", R9: "r9", R10: "r10", R11: "r11",
	R12: "r12", R13: "r13", R14: "r14", R15: "r15", RIP: "ip",
	RFLAGS: "flags", CS: "cs", SS: "ss", DS: "ds", ES: "es", FS: "fs",
	GS: "gs", FSBase: "fs_base", GSBase: "gs_base", OrigRAX: "orig_ax",
}

// longNames are the assembler's 64-bit names, accepted as well.
var longNames = [numRegs]string{
	RAX: "rax", RBX: "rbx", RCX: "rcx", RDX: "rdx", RSI: "rsi", RDI: "rdi",
	RBP: "rbp", RSP: "rsp", RIP: "rip", RFLAGS: "eflags", OrigRAX: "orig_rax",
}

// RegByName returns the register called name, without the leading '%'.
// It accepts the kernel's names ("ax", "di", "r8", "ip", "flags", "orig_ax")
// and the assembler's 64-bit names ("rax", "rdi", "rip", "eflags").
func RegByName(name string) (Reg, bool) {
	name = strings.ToLower(name)
	for r := Reg(0); r < numRegs; r++ {
		if kernelNames[r] == name || (longNames[r] != "" && longNames[r] == name) {
			return r, true
		}
	}
	return 0, false
}

// KernelName is the name the kernel's uprobe_events grammar uses for r.
func (r Reg) KernelName() string {
	if r < 0 || r >= numRegs {
		return "?"
	}
	return kernelNames[r]
}

func (r Reg) String() string { return r.KernelName() }

// Get reads r from regs.
func (r Reg) Get(regs *Regs) uint64 {
	if p := r.field(regs); p != nil {
		return *p
	}
	return 0
}

// Set writes v into r of regs.
func (r Reg) Set(regs *Regs, v uint64) {
	if p := r.field(regs); p != nil {
		*p = v
	}
}

func (r Reg) field(regs *Regs) *uint64 {
	switch r {
	case RAX:
		return &regs.Rax
	case RBX:
		return &regs.Rbx
	case RCX:
		return &regs.Rcx
	case RDX:
		return &regs.Rdx
	case RSI:
		return &regs.Rsi
	case RDI:
		return &regs.Rdi
	case RBP:
		return &regs.Rbp
	case RSP:
		return &regs.Rsp
	case R8:
		return &regs.R8
	case R9:
		return &regs.R9
	case R10:
		return &regs.R10
	case R11:
		return &regs.R11
	case R12:
		return &regs.R12
	case R13:
		return &regs.R13
	case R14:
		return &regs.R14
	case R15:
		return &regs.R15
	case RIP:
		return &regs.Rip
	case RFLAGS:
		return &regs.Eflags
	case CS:
		return &regs.Cs
	case SS:
		return &regs.Ss
	case DS:
		return &regs.Ds
	case ES:
		return &regs.Es
	case FS:
		return &regs.Fs
	case GS:
		return &regs.Gs
	case FSBase:
		return &regs.Fs_base
	case GSBase:
		return &regs.Gs_base
	case OrigRAX:
		return &regs.Orig_rax
	}
	return nil
}

// ArgRegs are the registers of the first six integer arguments in the
// System V AMD64 calling convention.
var ArgRegs = [6]Reg{RDI, RSI, RDX, RCX, R8, R9}

// GoArgRegs are the registers of the integer argument words of Go's
// register ABI (ABIInternal, Go 1.17 and later), in order.
var GoArgRegs = [9]Reg{RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11}

// GoGReg holds the current goroutine's g in Go's register ABI, at every
// function entry and return of ABIInternal code.
const GoGReg = R14
