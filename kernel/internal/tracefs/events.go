package tracefs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SessionPrefix starts the names of the tracefs instance and the event
// group of every session: "ptprobe_<pid>", then "ptprobe_<pid>_<n>" for
// further sessions of the same process. CleanStale recognizes the
// leftovers of dead processes by these names.
const SessionPrefix = "ptprobe_"

// removeTimeout bounds the retries of removing an event the kernel still
// reports busy (EBUSY: it is being disabled, or a perf user holds it), or
// an instance whose buffer is still in use.
const removeTimeout = 2 * time.Second

// sessionName is the n-th session name of process pid (n from 1).
func sessionName(pid, n int) string {
	name := SessionPrefix + strconv.Itoa(pid)
	if n > 1 {
		name += "_" + strconv.Itoa(n)
	}
	return name
}

// sessionPID returns the pid of a session name "ptprobe_<pid>" or
// "ptprobe_<pid>_<n>".
func sessionPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, SessionPrefix)
	if !ok {
		return 0, false
	}
	pidText, n, hasN := strings.Cut(rest, "_")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != pidText {
		return 0, false
	}
	if hasN {
		if k, err := strconv.Atoi(n); err != nil || k < 2 || strconv.Itoa(k) != n {
			return 0, false
		}
	}
	return pid, true
}

// Define appends the definition line to file (UprobeEvents or
// KprobeEvents). A line the kernel refuses is a *KernelError with the
// kernel's error_log entry for it.
func (t *Tracefs) Define(file, line string) error {
	if len(line) > MaxLineLen {
		return fmt.Errorf("a definition of %d bytes, the kernel takes at most %d: %q", len(line), MaxLineLen, line)
	}
	if err := Write(t.Path(file), line+"\n", os.O_APPEND); err != nil {
		return t.Refused(file, line, err)
	}
	return nil
}

// RemoveEvent removes GROUP/EVENT from file ("-:GROUP/EVENT"), retrying
// while the kernel reports it busy. An event that is already gone is not
// an error.
func (t *Tracefs) RemoveEvent(file, group, event string) error {
	line := "-:" + group + "/" + event
	deadline := time.Now().Add(removeTimeout)
	for {
		err := Write(t.Path(file), line+"\n", os.O_APPEND)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return t.Refused(file, line, err)
	}
}

// probeEvents returns the GROUP/EVENT names defined in a *_events file.
func (t *Tracefs) probeEvents(file string) ([][2]string, error) {
	data, err := os.ReadFile(t.Path(file))
	if err != nil {
		return nil, err
	}
	var evs [][2]string
	for _, l := range strings.Split(string(data), "\n") {
		// "p:GROUP/EVENT place args", "r10:GROUP/EVENT ..."
		head, _, _ := strings.Cut(l, " ")
		_, name, ok := strings.Cut(head, ":")
		if !ok {
			continue
		}
		grp, ev, ok := strings.Cut(name, "/")
		if ok {
			evs = append(evs, [2]string{grp, ev})
		}
	}
	return evs, nil
}

// RemoveGroup removes every uprobe and kprobe event of group.
func (t *Tracefs) RemoveGroup(group string) error {
	var errs []error
	for _, file := range []string{UprobeEvents, KprobeEvents} {
		if !Exists(t.Path(file)) {
			continue
		}
		evs, err := t.probeEvents(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", file, err))
			continue
		}
		for _, ge := range evs {
			if ge[0] == group {
				if err := t.RemoveEvent(file, ge[0], ge[1]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// alive reports whether a process pid exists (EPERM: it exists, we may
// not signal it).
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// CleanStale removes the instances and event groups of sessions whose
// process is gone (a ptprobe that was killed before it could close its
// session), and returns what it removed ("instances/ptprobe_123",
// "uprobe_events:ptprobe_123/ev"). Sessions of live processes are left
// alone.
//
// A session is recognized by its name alone: a process that reuses the
// pid of a dead ptprobe keeps its leftovers alive until it exits too, and
// a ptprobe in another pid namespace sharing this tracefs looks dead.
func (t *Tracefs) CleanStale() ([]string, error) {
	var removed []string
	var errs []error
	if ents, err := os.ReadDir(t.Path("instances")); err == nil {
		for _, e := range ents {
			pid, ok := sessionPID(e.Name())
			if !ok || alive(pid) {
				continue
			}
			inst := &Instance{Name: e.Name(), Dir: t.Path("instances", e.Name())}
			if err := inst.Remove(); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "instances/"+e.Name())
		}
	}
	for _, file := range []string{UprobeEvents, KprobeEvents} {
		if !Exists(t.Path(file)) {
			continue
		}
		evs, err := t.probeEvents(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", file, err))
			continue
		}
		for _, ge := range evs {
			pid, ok := sessionPID(ge[0])
			if !ok || alive(pid) {
				continue
			}
			// Enabled in the top-level buffer by someone else: it
			// cannot be removed before it is disabled there.
			Write(t.Path("events", ge[0], ge[1], "enable"), "0", os.O_TRUNC)
			if err := t.RemoveEvent(file, ge[0], ge[1]); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, file+":"+ge[0]+"/"+ge[1])
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("remove stale sessions: %w", errors.Join(errs...))
	}
	return removed, nil
}

// Count is the hit count of one event in uprobe_profile or
// kprobe_profile.
type Count struct {
	Hits uint64
	// Missed is the kernel's nmissed of a kprobe (kprobe_profile's third
	// column); uprobes have none.
	Missed uint64
}

// Profile returns the counts of the events named in events (kernel event
// names, of any group) from profile (UprobeProfile or KprobeProfile).
// The kernel counts a hit before it filters by pid: these are the hits of
// every process.
func (t *Tracefs) Profile(profile string, events map[string]bool) (map[string]Count, error) {
	data, err := os.ReadFile(t.Path(profile))
	if err != nil {
		return nil, fmt.Errorf("read hit counts: %w", err)
	}
	counts := make(map[string]Count, len(events))
	for _, l := range strings.Split(string(data), "\n") {
		// "  PATH EVENT COUNT" (uprobes, PATH may hold spaces),
		// "  EVENT HITS MISSES" (kprobes).
		w := strings.Fields(l)
		if len(w) < 2 {
			continue
		}
		var c Count
		name := w[len(w)-2]
		if profile == KprobeProfile {
			name = w[0]
			c.Hits, _ = strconv.ParseUint(w[1], 10, 64)
			if len(w) > 2 {
				c.Missed, _ = strconv.ParseUint(w[2], 10, 64)
			}
		} else {
			c.Hits, _ = strconv.ParseUint(w[len(w)-1], 10, 64)
		}
		if events[name] {
			old := counts[name]
			counts[name] = Count{old.Hits + c.Hits, old.Missed + c.Missed}
		}
	}
	return counts, nil
}
