// Command ptprobe traces probes on unmodified programs through ptrace, with
// the kernel's uprobe_events grammar for probe specs.
//
//	ptprobe trace -e 'libc:malloc size=%di:u64' -- ls /usr/bin
//	ptprobe list /lib/x86_64-linux-gnu/libc.so.6 'mem*'
//
// The commands are github.com/spf13/cobra commands (root.go), one file
// each: trace.go, compare.go, list.go, and man.go for the man pages; the
// shell completion scripts and --version come from the same definitions.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ptprobe/ptprobe/cmd/ptprobe/internal/early"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/uprobe"
)

// exitUsage is ptprobe's exit status for its own errors: bad input, files
// that cannot be probed, failures of the engine.
const exitUsage = 2

func main() {
	// A write to a stdout whose reader went away (`| head`) returns EPIPE
	// instead of killing ptprobe — which, attached with -p, would leave
	// the program with ptprobe's breakpoints and no tracer. A handled
	// signal (unlike an ignored one) is reset to the default in the
	// programs ptprobe starts.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// SIGINT, SIGTERM, SIGHUP are caught since package early was
	// initialized, before any program is started or attached to: one
	// that comes early ends the run before it starts one (watchSignals).
	ctx := withSignals(context.Background(), catchSignals(early.C))
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one ptprobe command and returns the exit status: the
// traced program's for trace, 0 or 1 for compare, exitUsage for an error
// of ptprobe's own (a bad flag, command or spec).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.rootCmd()
	if len(args) == 0 {
		// No command: the usage, to stderr, and the usage status.
		root.SetOut(stderr)
		root.Help()
		return exitUsage
	}
	root.SetArgs(args)
	if cmd, _, err := root.Find(args); err != nil || !startsPrograms[cmd.Name()] {
		releaseSignals(ctx)
	}
	if err := root.ExecuteContext(ctx); err != nil {
		reportError(stderr, err)
		return exitUsage
	}
	return c.status
}

// startsPrograms are the commands that launch or attach to programs,
// which handle ptprobe's signals themselves (watchSignals).
var startsPrograms = map[string]bool{"trace": true, "run": true, "compare": true}

// reportError prints err as "ptprobe: ...". A malformed spec is shown the
// way the kernel's error_log shows it, with a caret under the problem.
func reportError(w io.Writer, err error) {
	if reportQuestionError(w, err) {
		return
	}
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
