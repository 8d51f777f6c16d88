package tracefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Instance is a tracefs instance (instances/NAME): a ring buffer, event
// switches, options and a pid filter of its own. Event definitions are
// global, but an event enabled in one instance only is recorded in that
// instance's buffer only, so concurrent sessions and other tracing users
// never see, nor consume, each other's events (docs/DESIGN.md §7).
type Instance struct {
	Name string // the instance's name, also its session's event group
	Dir  string // its directory
}

// NewInstance creates the instance of a new session of process pid:
// instances/ptprobe_<pid>, or ptprobe_<pid>_<n> with the first n free
// (mkdir is what makes the name unique among the process's sessions).
func (t *Tracefs) NewInstance(pid int) (*Instance, error) {
	for n := 1; ; n++ {
		name := sessionName(pid, n)
		dir := t.Path("instances", name)
		err := os.Mkdir(dir, 0o750)
		if err == nil {
			return &Instance{Name: name, Dir: dir}, nil
		}
		if !errors.Is(err, os.ErrExist) || n >= 10000 {
			return nil, fmt.Errorf("create tracefs instance: %w", err)
		}
	}
}

// Path joins elements under the instance's directory.
func (i *Instance) Path(elem ...string) string {
	return filepath.Join(append([]string{i.Dir}, elem...)...)
}

// Set writes value to one of the instance's files ("trace_clock",
// "options/record-tgid"...), replacing what it held.
func (i *Instance) Set(file, value string) error {
	if err := Write(i.Path(file), value, os.O_TRUNC); err != nil {
		return fmt.Errorf("set %s of instance %s to %q: %w", file, i.Name, value, err)
	}
	return nil
}

// Enable switches event group/event on or off in the instance only;
// event "" switches every event of the group at once. Errors are the
// write's, kernel-internal errnos explained (explainEnable).
func (i *Instance) Enable(group, event string, on bool) error {
	val := "0"
	if on {
		val = "1"
	}
	path := i.Path("events", group, "enable")
	if event != "" {
		path = i.Path("events", group, event, "enable")
	}
	return explainEnable(Write(path, val, os.O_TRUNC))
}

// Format is the text of the format file of event group/event.
func (i *Instance) Format(group, event string) (string, error) {
	b, err := os.ReadFile(i.Path("events", group, event, "format"))
	return string(b), err
}

// SetPIDs limits the instance's events to the given threads and, with
// follow (options/event-fork), to the threads and children they create
// from then on. No pids removes the filter.
func (i *Instance) SetPIDs(follow bool, pids []int) error {
	fork := "0"
	if follow {
		fork = "1"
	}
	if err := i.Set("options/event-fork", fork); err != nil {
		return err
	}
	var b strings.Builder
	for n, pid := range pids {
		if n > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(pid))
	}
	// O_TRUNC replaces the list.
	return i.Set("set_event_pid", b.String())
}

// Lost returns how many events the instance lost: overwritten
// ("overrun") or dropped because a CPU's buffer was full ("dropped
// events"), summed over the per-CPU stats.
func (i *Instance) Lost() (uint64, error) {
	cpus, err := filepath.Glob(i.Path("per_cpu", "cpu*", "stats"))
	if err != nil || len(cpus) == 0 {
		return 0, fmt.Errorf("no per-CPU stats in instance %s: %v", i.Name, err)
	}
	var lost uint64
	for _, f := range cpus {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", f, err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok || k != "overrun" && k != "dropped events" {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: bad %q line", f, l)
			}
			lost += n
		}
	}
	return lost, nil
}

// Remove removes the instance, which disables the events enabled in it
// and frees its buffer, retrying while the kernel reports it busy. An
// instance that is gone already, or being removed by another process, is
// not an error.
func (i *Instance) Remove() error {
	deadline := time.Now().Add(removeTimeout)
	for {
		err := unix.Rmdir(i.Dir)
		switch {
		case err == nil || err == unix.ENOENT || err == unix.ENODEV:
			// ENODEV: another process is removing it right now.
			return nil
		case err == unix.EBUSY && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return fmt.Errorf("remove tracefs instance %s: %w", i.Dir, err)
	}
}
