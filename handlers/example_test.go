package handlers_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/handlers"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Make libc's getpid return 42 to a shell, which says so as its $$.
func ExampleNewRetval() {
	unlock, err := testprog.LockSystemProbes(false) // kernel tests probe libc too
	if err != nil {
		panic(err)
	}
	defer unlock()
	rv, err := handlers.NewRetval(42, nil) // every return
	if err != nil {
		panic(err)
	}
	spec, err := uprobe.Parse("r libc:getpid")
	if err != nil {
		panic(err)
	}
	out, err := os.CreateTemp("", "example-")
	if err != nil {
		panic(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	res, err := engine.Backend{}.Run(context.Background(), &backend.Request{
		Argv:    []string{"/bin/sh", "-c", "echo $$"},
		Probes:  []backend.Probe{{Spec: spec, Handlers: rv.Handlers()}},
		Process: backend.Process{Stdout: out},
	})
	if err != nil {
		panic(err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		panic(err)
	}
	fmt.Printf("the shell's $$: %s", b)
	fmt.Println("exit status", res.Status())
	// Output:
	// the shell's $$: 42
	// exit status 0
}

// Time the nanosleep of sleep 0.02 from entry to return.
func ExampleLatencies() {
	unlock, err := testprog.LockSystemProbes(false)
	if err != nil {
		panic(err)
	}
	defer unlock()
	spec, err := uprobe.Parse("r libc:nanosleep")
	if err != nil {
		panic(err)
	}
	lat := handlers.NewLatencies()
	if _, err := (engine.Backend{}).Run(context.Background(), &backend.Request{
		Argv:    []string{"sleep", "0.02"},
		Probes:  []backend.Probe{{Spec: spec}},
		OnEvent: lat.Add, // on the ptrace thread, one event at a time
	}); err != nil {
		panic(err)
	}
	h := lat.Histogram(spec.Probe())
	fmt.Println("returns:", h.Count, "at least 20ms:", time.Duration(h.Min) >= 20*time.Millisecond)
	// A sleep is never early; how late it is, is the machine's.
	text := string(lat.AppendText(nil, spec.Probe()))
	fmt.Println(strings.SplitN(text, "\n", 2)[0])
	// Output:
	// returns: 1 at least 20ms: true
	// @ptprobe/nanosleep__return (ns):
}
