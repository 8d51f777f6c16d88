package tracefs

import (
	"strconv"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Limits of definitions, the kernel's (trace_probe.h, trace_events.c).
const (
	// MaxLineLen is the longest definition the kernel takes in one
	// write (WRITE_BUFSIZE less the newline).
	MaxLineLen = 4095
	// MaxNameLen is MAX_EVENT_NAME_LEN-1: the longest group or event
	// name.
	MaxNameLen = 63
	// MaxArgs is MAX_TRACE_ARGS: the most fetch-args of one probe.
	MaxArgs = 128
)

// UprobeLine renders a uprobe_events line: the probe of the given kind
// under the kernel's group and event names, on the file at path (absolute,
// without white space) and the file offset, with args:
//
//	p:GROUP/EVENT PATH:0xOFFSET NAME=FETCHARG:TYPE ...
//
// ("r:" for return probes). args must be bound (uprobe.Spec.Bind): the
// kernel takes $argN only for kernel functions. Every fetch-arg is written
// out with its name and type, registers by their kernel names (%di,
// %ax...); registers the kernel does not know (%ds, %fs_base...) are
// written as they are, for the kernel to refuse with its own message.
//
// refCtr, when not 0, is the probe's REF_CTR_OFFSET, written as
// "PATH:0xOFFSET(0xREF_CTR_OFFSET)": the kernel then raises the counter at
// that file offset in each process where it installs the probe (a USDT
// semaphore, docs/DESIGN.md §9).
func UprobeLine(kind uprobe.Kind, group, event, path string, offset, refCtr uint64, args []uprobe.FetchArg) string {
	b := []byte("p:")
	if kind == uprobe.Return {
		b[0] = 'r'
	}
	b = append(b, group...)
	b = append(b, '/')
	b = append(b, event...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, ":0x"...)
	b = strconv.AppendUint(b, offset, 16)
	if refCtr != 0 {
		b = append(b, "(0x"...)
		b = strconv.AppendUint(b, refCtr, 16)
		b = append(b, ')')
	}
	return string(appendArgs(b, args))
}

// KprobeLine renders the kprobe_events line of a kernel probe spec under
// the kernel's group and event names, with args in place of the spec's
// own (the spec's with others added):
//
//	p:GROUP/EVENT [MOD:]KSYM+0xOFFS NAME=FETCHARG:TYPE ...
//
// "r[MAXACTIVE]:" for return probes, also those written with %return
// (which kernels before 5.11 do not know), "0xADDR" for an address. The
// spec's symbolic fetch-args (@SYM+OFFS, uprobe.OpSymbol) are written as
// they are: the kernel binds them to addresses itself.
func KprobeLine(spec *uprobe.Spec, group, event string, args []uprobe.FetchArg) string {
	b := []byte("p")
	if spec.Kind == uprobe.Return {
		b[0] = 'r'
		if spec.MaxActive > 0 {
			b = strconv.AppendInt(b, int64(spec.MaxActive), 10)
		}
	}
	b = append(b, ':')
	b = append(b, group...)
	b = append(b, '/')
	b = append(b, event...)
	b = append(b, ' ')
	b = append(b, spec.Target()...)
	return string(appendArgs(b, args))
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
