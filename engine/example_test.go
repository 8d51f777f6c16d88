package engine_test

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Launch a program with a probe on libc's malloc armed before its first
// instruction, and count the calls.
func ExampleLaunch() {
	unlock, err := testprog.LockSystemProbes(false) // kernel tests probe libc too
	if err != nil {
		panic(err)
	}
	defer unlock()
	spec, err := uprobe.Parse("libc:malloc size=%di:u64")
	if err != nil {
		panic(err)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	defer devNull.Close()
	var sizes uint64
	tr, err := engine.Launch([]string{"ls", "/"}, &engine.Options{
		Probes:  []backend.Probe{{Spec: spec}},
		OnEvent: func(ev *uprobe.Event) { sizes += ev.Args[0].U }, // on the ptrace thread
		Process: backend.Process{Stdout: devNull},
	})
	if err != nil {
		panic(err)
	}
	res, err := tr.Wait()
	if err != nil {
		panic(err)
	}
	fmt.Println("exit status", res.ExitCode, "malloc called:", tr.Probes()[0].Hits() > 0, "bytes asked:", sizes > 0)
	// Output: exit status 0 malloc called: true bytes asked: true
}

// Add a probe to a program that is already running, see it fire, close
// it and see no more hits; then detach, and the program runs on.
func ExampleExecutable_Uprobe() {
	unlock, err := testprog.LockSystemProbes(false)
	if err != nil {
		panic(err)
	}
	defer unlock()
	yes := exec.Command("yes") // writes "y" lines without end
	if yes.Stdout, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
		panic(err)
	}
	if err := yes.Start(); err != nil {
		panic(err)
	}
	defer func() { yes.Process.Kill(); yes.Wait() }() // once detached

	tr, err := engine.Attach(yes.Process.Pid, nil)
	if err != nil {
		panic(err)
	}
	write, err := tr.Executable("libc").Uprobe("write", uprobe.Handlers{}, nil)
	if err != nil {
		panic(err)
	}
	for write.Hits() < 10 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("write fired:", write.Hits() >= 10)
	if err := write.Close(); err != nil {
		panic(err)
	}
	n := write.Hits()
	time.Sleep(50 * time.Millisecond)
	fmt.Println("hits after Close:", write.Hits()-n)
	if err := tr.Close(); err != nil {
		panic(err)
	}
	res, _ := tr.Wait()
	fmt.Println("detached:", res.Detached, "text as the file's:", len(res.TextMismatches) == 0)
	// Output:
	// write fired: true
	// hits after Close: 0
	// detached: true text as the file's: true
}
