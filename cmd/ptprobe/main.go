// Command ptprobe traces probes on unmodified programs through ptrace, with
// the kernel's uprobe_events grammar for probe specs.
//
//	ptprobe trace -e 'libc:malloc size=%di:u64' -- ls /usr/bin
//	ptprobe list /lib/x86_64-linux-gnu/libc.so.6 'mem*'
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/uprobe"
)

// exitUsage is ptprobe's exit status for its own errors: bad input, files
// that cannot be probed, failures of the engine.
const exitUsage = 2

const usage = `usage: ptprobe COMMAND [FLAGS] [ARGS]

commands:
  trace [-e SPEC]... [--format text|json] [--count] [-o FILE] -- CMD [ARGS]
        run CMD under the ptrace engine and report each probe hit
  trace --backend kernel [-e SPEC]... [-k KSPEC]... -- CMD [ARGS]
        the same through the kernel's tracefs (uprobes, kprobes; needs root)
  compare [-e SPEC]... [--format text|json] -- CMD [ARGS]
        run CMD under kernel uprobes and under the ptrace engine and compare
        hits, fetched arguments and cost per hit
  list PATH|LIB [GLOB]
        list the functions of an ELF file with address, file offset and size

Probe specs use the kernel's uprobe_events grammar:
  p[:[GRP/]EVENT] PATH:OFFSET|PATH:SYMBOL[+OFFS]|LIB:SYMBOL [FETCHARGS]
  r[:[GRP/]EVENT] PATH:SYMBOL [FETCHARGS]       (or PATH:SYMBOL%return)
FETCHARGS: [NAME=]%REG|@ADDR|@+OFFSET|$stack|$stackN|$comm|$retval|$argN|+|-OFFS(FETCHARG)[:TYPE]
TYPE: u8 u16 u32 u64 s8 s16 s32 s64 x8 x16 x32 x64 string

Run "ptprobe COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one ptprobe command and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	status := 0
	switch args[0] {
	case "trace":
		status, err = traceCmd(args[1:], stdout, stderr)
	case "compare":
		status, err = compareCmd(args[1:], stdout, stderr)
	case "list":
		err = listCmd(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = fmt.Errorf("unknown command %q (try trace or list)", args[0])
	}
	if err != nil {
		reportError(stderr, err)
		return exitUsage
	}
	return status
}

// reportError prints err as "ptprobe: ...". A malformed spec is shown the
// way the kernel's error_log shows it, with a caret under the problem.
func reportError(w io.Writer, err error) {
	var se *uprobe.Error
	if errors.As(err, &se) {
		fmt.Fprintf(w, "ptprobe: bad probe spec: %s\n", se.Caret())
		return
	}
	var ke *kernel.KernelError
	if errors.As(err, &ke) {
		fmt.Fprintf(w, "ptprobe: the kernel refused a probe: %v\n%s\n", err, ke.Caret())
		return
	}
	fmt.Fprintf(w, "ptprobe: %v\n", err)
}
