// Package stress hunts the engine's races: loops over the paths that have
// a window (detach under load), shared by the bounded runs of go test and
// the longer ones of ptprobe-bench.
package stress

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/uprobe"
)

// DetachReport is what a run of DetachCycles saw.
type DetachReport struct {
	Cycles int    // attach/detach cycles made
	Hits   uint64 // probe hits over all cycles
	// Deaths lists the cycles after whose detach the program died, and
	// how (it is started again after each).
	Deaths []string
	// Failures lists everything else that went wrong: text that differs
	// from the file after a detach, a wrong program output, an attach
	// that failed.
	Failures []string
}

// DetachCycles attaches to and detaches from a running testdata/c/hot.c
// (built at prog) with nthreads threads in its hot loop, cycles times, with
// events formatted, with return probes and with post handlers, and reports
// what it saw. A detach must never leave a trap of the engine's pending in
// a thread (it would kill the program with SIGTRAP), an int3 or a hijacked
// return address, and never lose or repeat a displaced instruction (the
// program checks its own sums). dir is for the program's stop file.
func DetachCycles(prog, dir string, nthreads, cycles int) (DetachReport, error) {
	var rep DetachReport
	configs, err := detachConfigs(prog)
	if err != nil {
		return rep, err
	}
	p, err := startHot(prog, dir, nthreads)
	if err != nil {
		return rep, err
	}
	defer func() { p.kill() }()
	var line []byte
	for i := 0; i < cycles; i++ {
		c := configs[i%len(configs)]
		var warnings []string
		cfg := engine.Options{
			Probes: c.probes,
			// Formatting events makes each stop longer, the race's
			// window wider.
			OnEvent: func(ev *uprobe.Event) { line = ev.AppendText(line[:0]) },
			Warn:    func(err error) { warnings = append(warnings, err.Error()) },
		}
		sess, err := engine.Attach(p.pid, &cfg)
		if err != nil {
			return rep, fmt.Errorf("cycle %d (%s): attach: %w", i, c.name, err)
		}
		// Detach while hits are under way: after some hits, at a
		// moment that varies from cycle to cycle.
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			if sess.Probes()[0].Hits() > uint64(50+i*37%400) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		sess.Detach()
		res, err := sess.Wait()
		rep.Cycles++
		if err != nil {
			return rep, fmt.Errorf("cycle %d (%s): %w", i, c.name, err)
		}
		for _, pr := range sess.Probes() {
			rep.Hits += pr.Hits()
		}
		for _, w := range warnings {
			rep.Failures = append(rep.Failures, fmt.Sprintf("cycle %d (%s): engine warning: %s", i, c.name, w))
		}
		if len(res.TextMismatches) > 0 {
			rep.Failures = append(rep.Failures, fmt.Sprintf("cycle %d (%s): text differs from the file: %v", i, c.name, res.TextMismatches))
		}
		// A trap left pending kills the program as soon as it runs
		// on untraced: give it that moment.
		time.Sleep(10 * time.Millisecond)
		if why := p.dead(); why != "" || !res.Detached {
			rep.Deaths = append(rep.Deaths, fmt.Sprintf("cycle %d (%s): %s", i, c.name, why))
			p.kill()
			if p, err = startHot(prog, dir, nthreads); err != nil {
				return rep, err
			}
			continue
		}
		if err := sameText(p.pid, prog, "probed", "framed"); err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("cycle %d (%s): %v", i, c.name, err))
		}
	}
	if out, err := p.finish(); err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	} else if want := fmt.Sprintf("threads=%d ok\n", nthreads); out != want {
		rep.Failures = append(rep.Failures, fmt.Sprintf("the program printed %q, want %q", out, want))
	}
	return rep, nil
}

type detachConfig struct {
	name   string
	probes []backend.Probe
}

// detachConfigs are the probe sets the cycles take turns with: entry
// probes with fetch-args, entry and return probes on the same functions,
// and post handlers with return probes. probed's first instruction is
// several bytes long, framed's the 1-byte push %rbp.
func detachConfigs(prog string) ([]detachConfig, error) {
	post := uprobe.Handlers{Post: func(uprobe.Context) {}}
	sets := []struct {
		name  string
		specs []string
		post  []string
	}{
		{"entry", []string{prog + ":probed x=%di i=%si", prog + ":framed i=%di"}, nil},
		{"entry+return", []string{prog + ":probed x=%di", "r " + prog + ":probed rv=$retval", prog + ":framed", "r " + prog + ":framed"}, nil},
		{"post+return", []string{"r " + prog + ":probed", "r " + prog + ":framed"}, []string{"p:t/ppost " + prog + ":probed", "p:t/fpost " + prog + ":framed"}},
	}
	var configs []detachConfig
	for _, set := range sets {
		c := detachConfig{name: set.name}
		for i, text := range append(set.specs, set.post...) {
			spec, err := uprobe.Parse(text)
			if err != nil {
				return nil, fmt.Errorf("spec %q: %w", text, err)
			}
			pc := backend.Probe{Spec: spec}
			if i >= len(set.specs) {
				pc.Handlers = post
			}
			c.probes = append(c.probes, pc)
		}
		configs = append(configs, c)
	}
	return configs, nil
}

// hotProcess is a running hot.c, a child of this process. It is never
// waited for while it may be traced: a wait from this process would take
// the ptrace stops of its main thread from the engine's thread (the kernel
// reports a tracee's stops to every thread of the tracer's process that
// waits for it).
type hotProcess struct {
	cmd      *exec.Cmd
	pid      int
	stopFile string
	out      bytes.Buffer
	done     bool
}

func startHot(prog, dir string, nthreads int) (*hotProcess, error) {
	stopFile, err := os.CreateTemp(dir, "stop-")
	if err != nil {
		return nil, err
	}
	stopFile.Close()
	os.Remove(stopFile.Name()) // the program stops once it exists
	p := &hotProcess{stopFile: stopFile.Name()}
	p.cmd = exec.Command(prog, fmt.Sprint(nthreads), p.stopFile)
	p.cmd.Stdout = &p.out
	// Gone with the process that started it, should that die first.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(prog), err)
	}
	p.pid = p.cmd.Process.Pid
	return p, nil
}

// dead says how the program died, "" while it runs.
func (p *hotProcess) dead() string {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
	if err != nil || pid != p.pid {
		return ""
	}
	p.done = true
	switch {
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// finish asks the program to stop and returns its output.
func (p *hotProcess) finish() (string, error) {
	if err := os.WriteFile(p.stopFile, nil, 0o644); err != nil {
		return "", err
	}
	err := p.cmd.Wait()
	p.done = true
	if err != nil {
		return "", fmt.Errorf("the program at the end: %w (output %q)", err, p.out.String())
	}
	return p.out.String(), nil
}

func (p *hotProcess) kill() {
	if !p.done {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.done = true
	}
	os.Remove(p.stopFile)
}

// sameText checks that the named functions of prog in process pid hold
// exactly the file's bytes.
func sameText(pid int, prog string, funcs ...string) error {
	f, err := elfsym.Open(prog)
	if err != nil {
		return err
	}
	defer f.Close()
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		return err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer mem.Close()
	for _, name := range funcs {
		sym, err := f.Lookup(name)
		if err != nil {
			return err
		}
		want := make([]byte, sym.Size)
		if _, err := f.ReadAt(want, int64(sym.Offset)); err != nil {
			return fmt.Errorf("read %s from %s: %w", name, prog, err)
		}
		mapped := false
		for _, m := range maps {
			addr, ok := m.Addr(sym.Offset)
			if !ok || !m.Exec() || m.ID() != f.ID {
				continue
			}
			mapped = true
			got := make([]byte, sym.Size)
			if _, err := mem.ReadAt(got, int64(addr)); err != nil {
				return fmt.Errorf("read %s of process %d: %w", name, pid, err)
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("%s in process %d after the detach: % x, file: % x", name, pid, got, want)
			}
		}
		if !mapped {
			return errors.New(name + " is not mapped")
		}
	}
	return nil
}
