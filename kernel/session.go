package kernel

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// SessionPrefix starts the names of the tracefs instance and the event
// group of every session: "ptprobe_<pid>", then "ptprobe_<pid>_<n>" for
// further sessions of the same process.
const SessionPrefix = "ptprobe_"

// Files of tracefs the sessions write.
const (
	uprobeEvents  = "uprobe_events"
	kprobeEvents  = "kprobe_events"
	uprobeProfile = "uprobe_profile"
	kprobeProfile = "kprobe_profile"
)

// maxEventNameLen is MAX_EVENT_NAME_LEN-1: the longest group or event
// name the kernel takes.
const maxEventNameLen = 63

// maxLineLen is the longest definition the kernel takes in one write
// (WRITE_BUFSIZE less the newline).
const maxLineLen = 4095

// removeTimeout bounds the retries of removing an event the kernel still
// reports busy (EBUSY: it is being disabled, or a perf user holds it).
const removeTimeout = 2 * time.Second

// readerStopTimeout bounds how long Close waits for Events calls to drain
// and return before it removes the instance anyway.
const readerStopTimeout = 5 * time.Second

// ErrKprobesUnsupported is wrapped by AddKprobe on kernels without
// kprobe_events.
var ErrKprobesUnsupported = errors.New("this kernel has no kprobe_events (it was built without CONFIG_KPROBE_EVENTS): kernel probes are not supported")

// ErrUprobesUnsupported is wrapped by AddUprobe on kernels without
// uprobe_events.
var ErrUprobesUnsupported = errors.New("this kernel has no uprobe_events (it was built without CONFIG_UPROBE_EVENTS): the kernel backend cannot probe programs")

// ErrClosed is wrapped by the methods of a closed Session.
var ErrClosed = errors.New("kernel: session is closed")

// Options configure a Session. The zero value is the default.
type Options struct {
	// BufferKB is the size of each per-CPU ring buffer of the session's
	// instance in KiB; 0 keeps the kernel's default (1410 KiB on 6.x).
	// Events that arrive while a CPU's buffer is full are dropped and
	// counted by Lost: give a bigger buffer to programs that hit probes
	// faster than Events can read them.
	BufferKB int
	// Warn, if not nil, receives the problems that do not stop the
	// session: trace_pipe lines that cannot be parsed, a stale session
	// that cannot be removed, an instance option the kernel lacks.
	Warn func(error)
	// KeepStale skips the removal of dead sessions' leftovers by
	// NewSession (see CleanStale).
	KeepStale bool
	// NoASLR makes Run start the program with address space
	// randomization off (personality ADDR_NO_RANDOMIZE, as setarch -R),
	// so that two runs see the same addresses (ptprobe compare).
	NoASLR bool
	// Libraries finds the library of a "LIB:SYMBOL" spec for AddUprobe:
	// give the libraries of the program Run will start
	// (elfsym.NewLibraries with its path), so that a library it finds
	// only through its own DT_RUNPATH is found too. nil: the system's
	// (elfsym.SearchLibrary's places).
	Libraries *elfsym.Libraries
}

// Session is one ptprobe run on the kernel backend: a tracefs instance
// and an event group of its own, the probes defined in it and the
// mapping between the kernel's event names and the user's GROUP/EVENT.
//
// The methods of a Session are safe for concurrent use. Close removes
// everything the session made; it is idempotent and may be called from a
// signal-handling goroutine while Events runs.
type Session struct {
	tfs  *Tracefs
	name string // instance and event group name, "ptprobe_<pid>[_<n>]"
	inst string // instance directory
	opts Options
	// mono reports that the instance's clock is CLOCK_MONOTONIC, so
	// event times are comparable with the engine's.
	mono bool

	mu      sync.Mutex
	probes  []*probe
	byKname map[string]*probe
	byUser  map[string]*probe
	enabled bool
	closed  bool
	// closeDone is closed when the first Close has finished; closeErr
	// is its result.
	closeDone chan struct{}
	closeErr  error
	stops     map[*readerStop]struct{} // the running Events calls
	readers   sync.WaitGroup

	badLines atomic.Uint64
	// runWall is how long the last Run's program ran, in nanoseconds,
	// from its first instruction (the detach) to its exit.
	runWall atomic.Int64
}

// RunWall is how long the program of the last Run ran, from its first
// instruction to its exit: the program's own time, probe hits included,
// without the session's set-up and tear-down.
func (s *Session) RunWall() time.Duration { return time.Duration(s.runWall.Load()) }

// probe is a probe defined by a session.
type probe struct {
	kname string // kernel event name in the session's group
	file  string // uprobeEvents or kprobeEvents
	line  string // the definition written
	spec  string // the user's spec, for messages
	info  eventInfo
}

// NewSession makes a session: it removes what dead sessions left behind
// (unless opts.KeepStale), creates the tracefs instance
// instances/ptprobe_<pid> (or ptprobe_<pid>_<n>: mkdir is what makes the
// name unique among the sessions of this process), and sets the instance
// up: CLOCK_MONOTONIC timestamps ("mono"), the tgid column
// (record-tgid), addresses with kernel symbols (sym-addr), no overwriting
// of unread events (nooverwrite: a full buffer drops new events, which
// Lost counts) and buffer_percent 0, so that a poll on the pipe wakes on
// the first event on kernels that apply the watermark to it (6.18 wakes
// trace_pipe readers at once either way: ~0.1 ms measured here).
// opts may be nil.
func NewSession(tfs *Tracefs, opts *Options) (*Session, error) {
	s := &Session{tfs: tfs, byKname: map[string]*probe{}, byUser: map[string]*probe{}, stops: map[*readerStop]struct{}{}, closeDone: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	if !tfs.Features.UprobeEvents && !tfs.Features.KprobeEvents {
		return nil, fmt.Errorf("kernel: %s has neither uprobe_events nor kprobe_events: %w", tfs.Root, ErrUprobesUnsupported)
	}
	if !tfs.Features.Instances {
		return nil, fmt.Errorf("kernel: %s has no instances directory: sessions need a buffer of their own", tfs.Root)
	}
	if !s.opts.KeepStale {
		if _, err := CleanStale(tfs); err != nil {
			s.warn(err)
		}
	}
	pid := os.Getpid()
	for n := 1; ; n++ {
		name := SessionPrefix + strconv.Itoa(pid)
		if n > 1 {
			name += "_" + strconv.Itoa(n)
		}
		dir := tfs.path("instances", name)
		err := os.Mkdir(dir, 0o750)
		if err == nil {
			s.name, s.inst = name, dir
			break
		}
		if !errors.Is(err, os.ErrExist) || n >= 10000 {
			return nil, fmt.Errorf("kernel: create tracefs instance: %w", err)
		}
	}
	// A group of this name can only be a leftover of a dead process
	// that had our pid: no live session of ours has it, since its
	// instance did not exist.
	if err := removeGroupEvents(tfs, s.name); err != nil {
		s.rmdirInstance()
		return nil, fmt.Errorf("kernel: remove the leftover events of group %s: %w", s.name, err)
	}
	if err := s.setup(); err != nil {
		s.rmdirInstance()
		return nil, err
	}
	return s, nil
}

func (s *Session) setup() error {
	if err := writeFile(filepath.Join(s.inst, "trace_clock"), "mono", os.O_TRUNC); err == nil {
		s.mono = true
	} else {
		s.warn(fmt.Errorf("kernel: no CLOCK_MONOTONIC trace clock (event times are in the kernel's local clock): %w", err))
	}
	for _, o := range []struct{ file, val string }{
		{"options/record-tgid", "1"},
		{"options/sym-addr", "1"},
		{"options/overwrite", "0"},
		{"buffer_percent", "0"},
	} {
		if err := writeFile(filepath.Join(s.inst, o.file), o.val, os.O_TRUNC); err != nil {
			s.warn(fmt.Errorf("kernel: set %s of instance %s: %w", o.file, s.name, err))
		}
	}
	if s.opts.BufferKB > 0 {
		if err := writeFile(filepath.Join(s.inst, "buffer_size_kb"), strconv.Itoa(s.opts.BufferKB), os.O_TRUNC); err != nil {
			return fmt.Errorf("kernel: set the buffer size of instance %s to %d KiB: %w", s.name, s.opts.BufferKB, err)
		}
	}
	return nil
}

// Name is the session's instance and event group name.
func (s *Session) Name() string { return s.name }

// Instance is the path of the session's tracefs instance directory.
func (s *Session) Instance() string { return s.inst }

// MonotonicClock reports whether event times are CLOCK_MONOTONIC (the
// instance's "mono" trace clock), as the ptrace engine's are.
func (s *Session) MonotonicClock() bool { return s.mono }

// BadLines is the number of trace_pipe lines Events could not parse.
func (s *Session) BadLines() uint64 { return s.badLines.Load() }

func (s *Session) warn(err error) {
	if s.opts.Warn != nil {
		s.opts.Warn(err)
	}
}

// Definition is a probe as a session defined it in the kernel.
type Definition struct {
	Probe string // the user's "GROUP/EVENT"
	Event string // the kernel's "GROUP/EVENT" (the session's group)
	File  string // "uprobe_events" or "kprobe_events"
	Line  string // the definition written to File
}

// Definitions lists the session's probes in the order they were added.
func (s *Session) Definitions() []Definition {
	s.mu.Lock()
	defer s.mu.Unlock()
	defs := make([]Definition, len(s.probes))
	for i, p := range s.probes {
		defs[i] = Definition{p.info.group + "/" + p.info.name, s.name + "/" + p.kname, p.file, p.line}
	}
	return defs
}

// KernelEvent is the kernel event name of the user's probe "GROUP/EVENT",
// "" when the session has no such probe.
func (s *Session) KernelEvent(userProbe string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.byUser[userProbe]; p != nil {
		return p.kname
	}
	return ""
}

// AddUprobe resolves spec (see ResolveUprobe) and defines it in the
// session's group, appended to uprobe_events. A definition the kernel
// refuses returns a *KernelError with the kernel's message and caret.
// Probes added after Enable are enabled at once.
func (s *Session) AddUprobe(spec *uprobe.Spec) error {
	if !s.tfs.Features.UprobeEvents {
		return fmt.Errorf("kernel: probe %q: %w", spec.Text, ErrUprobesUnsupported)
	}
	loc, err := resolveUprobe(spec, s.opts.Libraries)
	if err != nil {
		return err
	}
	info := eventInfo{group: spec.Group, name: spec.Event, kind: spec.Kind}
	for i := range spec.Args {
		info.args = append(info.args, argInfo{spec.Args[i].Name, spec.Args[i].Type})
	}
	extra := s.commArg(&info)
	return s.add(uprobeEvents, info, spec.Text, func(kname string) string {
		return uprobeLine(spec, loc.Args, s.name, kname, loc.Path, loc.Offset, extra)
	})
}

// AddKprobe defines a kernel probe (a spec of uprobe.ParseKprobe) in the
// session's group, appended to kprobe_events. Kernels without
// kprobe_events return an error wrapping ErrKprobesUnsupported.
func (s *Session) AddKprobe(k *uprobe.Spec) error {
	if !k.Kernel {
		return fmt.Errorf("kernel: probe %q is a uprobe spec: add it with AddUprobe", k.Text)
	}
	if !s.tfs.Features.KprobeEvents {
		return fmt.Errorf("kernel: probe %q: %w", k.Text, ErrKprobesUnsupported)
	}
	if k.MaxActive > 0 && !s.tfs.Features.MaxActive {
		return fmt.Errorf("kernel: probe %q: this kernel does not take r[MAXACTIVE]", k.Text)
	}
	info := eventInfo{group: k.Group, name: k.Event, kind: k.Kind}
	for i := range k.Args {
		info.args = append(info.args, argInfo{k.Args[i].Name, k.Args[i].Type})
	}
	extra := s.commArg(&info)
	return s.add(kprobeEvents, info, k.Text, func(kname string) string {
		return kprobeLine(k, s.name, kname, extra)
	})
}

// maxArgs is the kernel's MAX_TRACE_ARGS.
const maxArgs = 128

// commArg adds the hidden $comm fetch-arg (see commArgName) to info when
// the kernel has $comm and the probe has room for it, and returns it to
// write before the probe's own (nil when not added).
func (s *Session) commArg(info *eventInfo) []uprobe.FetchArg {
	if !s.tfs.Features.Comm || len(info.args) >= maxArgs {
		return nil
	}
	for _, a := range info.args {
		if a.name == commArgName {
			return nil
		}
	}
	// First: the kernel sizes an event's strings before it copies
	// them, and a string longer than it records (4095 bytes) is sized 0
	// and then copied into the room of the strings after it. Placed
	// first, the comm never changes what the probe's own args show.
	comm := uprobe.FetchArg{Name: commArgName, Type: uprobe.Type{Kind: uprobe.String}, Expr: &uprobe.Expr{Op: uprobe.OpComm}}
	info.args = append([]argInfo{{comm.Name, comm.Type}}, info.args...)
	info.commArg = true
	return []uprobe.FetchArg{comm}
}

func (s *Session) add(file string, info eventInfo, spec string, render func(kname string) string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	user := info.group + "/" + info.name
	if s.byUser[user] != nil {
		return fmt.Errorf("kernel: probe %s is defined twice in this session", user)
	}
	p := &probe{kname: s.kernelName(info.group, info.name), file: file, info: info, spec: spec}
	p.line = render(p.kname)
	if len(p.line) > maxLineLen {
		return fmt.Errorf("kernel: probe %s: its definition is %d bytes, the kernel takes at most %d", user, len(p.line), maxLineLen)
	}
	if err := writeFile(s.tfs.path(file), p.line+"\n", os.O_APPEND); err != nil {
		return s.tfs.kernelError(file, p.line, err)
	}
	eventDir := filepath.Join(s.inst, "events", s.name, p.kname)
	format, err := os.ReadFile(filepath.Join(eventDir, "format"))
	if err == nil {
		var fields []formatField
		if fields, err = parseFormat(string(format)); err == nil {
			err = checkFormat(fields, info.args)
		}
	}
	if err != nil {
		rerr := s.tfs.removeEvent(file, s.name, p.kname)
		return errors.Join(fmt.Errorf("kernel: probe %s: the kernel's event %s/%s is not what was defined (%q): %w", user, s.name, p.kname, p.line, err), rerr)
	}
	if s.enabled {
		if err := writeFile(filepath.Join(eventDir, "enable"), "1", os.O_TRUNC); err != nil {
			rerr := s.tfs.removeEvent(file, s.name, p.kname)
			return errors.Join(fmt.Errorf("kernel: enable probe %s (%s): %w", user, p.line, explainEnable(err)), rerr)
		}
	}
	s.probes = append(s.probes, p)
	s.byKname[p.kname] = p
	s.byUser[user] = p
	return nil
}

// kernelName maps the user's GROUP/EVENT to a kernel event name unique
// within the session and across sessions ("GROUP__EVENT_<pid>[_<n>]"):
// trace_pipe shows event names without their group, and uprobe_profile
// too, where every session's events are listed together. Long names are
// cut and given a hash of the whole so that they stay distinct.
func (s *Session) kernelName(group, event string) string {
	suffix := "_" + strings.TrimPrefix(s.name, SessionPrefix)
	base := group + "__" + event
	if len(base)+len(suffix) > maxEventNameLen {
		h := fnv.New32a()
		h.Write([]byte(base))
		tag := fmt.Sprintf("_%08x", h.Sum32())
		base = base[:maxEventNameLen-len(suffix)-len(tag)] + tag
	}
	name := base + suffix
	for n := 2; s.byKname[name] != nil; n++ {
		// Distinct user names that map to one kernel name
		// ("a__b"/"c" and "a"/"b__c").
		tag := "_" + strconv.Itoa(n)
		b := base
		if len(b)+len(tag)+len(suffix) > maxEventNameLen {
			b = b[:maxEventNameLen-len(tag)-len(suffix)]
		}
		name = b + tag + suffix
	}
	return name
}

// Enable enables the session's events in its instance only: other
// instances, and the top-level buffer, see none of them.
func (s *Session) Enable() error { return s.setEnabled(true) }

// Disable disables the session's events. Their hit counts stay.
func (s *Session) Disable() error { return s.setEnabled(false) }

func (s *Session) setEnabled(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.probes) == 0 {
		if on {
			return errors.New("kernel: the session has no probes to enable")
		}
		return nil
	}
	val := "0"
	if on {
		val = "1"
	}
	// The group's enable file switches all of its events at once.
	if err := writeFile(filepath.Join(s.inst, "events", s.name, "enable"), val, os.O_TRUNC); err != nil {
		if on {
			return s.findRefused(err)
		}
		return fmt.Errorf("kernel: disable the events of %s: %w", s.name, explainEnable(err))
	}
	s.enabled = on
	return nil
}

// maxRefusedNamed bounds the probes an enable error lists.
const maxRefusedNamed = 5

// findRefused names the probes the kernel refused when enabling the
// session's group failed with groupErr: the group's write returns the
// first error of all its events and names none. The kernel keeps the
// events it could enable enabled, so the group is disabled, each probe
// enabled alone, and the group disabled again. Called with s.mu held.
func (s *Session) findRefused(groupErr error) error {
	dir := filepath.Join(s.inst, "events", s.name)
	disable := func() error {
		if err := writeFile(filepath.Join(dir, "enable"), "0", os.O_TRUNC); err != nil {
			return fmt.Errorf("kernel: disable the events of %s after a failed enable: %w", s.name, explainEnable(err))
		}
		return nil
	}
	if err := disable(); err != nil {
		return errors.Join(fmt.Errorf("kernel: enable the events of %s: %w", s.name, explainEnable(groupErr)), err)
	}
	var named []string // the first maxRefusedNamed refused probes
	var first error    // the errno of the first
	n := 0
	for _, p := range s.probes {
		err := writeFile(filepath.Join(dir, p.kname, "enable"), "1", os.O_TRUNC)
		if err == nil {
			continue
		}
		err = explainEnable(err)
		if n == 0 {
			first = err
		}
		if n++; n <= maxRefusedNamed {
			named = append(named, fmt.Sprintf("%s/%s (%q, defined as %q): %v", p.info.group, p.info.name, p.spec, p.line, err))
		}
	}
	derr := disable()
	var err error
	switch {
	case n == 0:
		// Each alone was taken: a limit of the whole, not one probe.
		err = fmt.Errorf("kernel: enable the events of %s: %w (yet the kernel enabled each of its %d probes alone)", s.name, explainEnable(groupErr), len(s.probes))
	case n == 1:
		err = &refusedError{text: "kernel: the kernel refused to enable probe " + named[0], err: first}
	default:
		text := fmt.Sprintf("kernel: the kernel refused to enable %d of the %d probes:\n  %s", n, len(s.probes), strings.Join(named, "\n  "))
		if n > maxRefusedNamed {
			text += fmt.Sprintf("\n  and %d more", n-maxRefusedNamed)
		}
		err = &refusedError{text: text, err: first}
	}
	return errors.Join(err, derr)
}

// refusedError names the probes the kernel would not enable and wraps
// the first one's errno.
type refusedError struct {
	text string
	err  error
}

func (e *refusedError) Error() string { return e.text }
func (e *refusedError) Unwrap() error { return e.err }

// SetPIDs limits the session's events to the given processes and, as the
// instance follows forks (options/event-fork), to the threads and
// children they create from then on. No pids removes the filter: every
// process that runs a probed instruction is traced.
//
// The filter is on thread ids: pass the pid of a process before it
// creates its threads, or every thread id.
func (s *Session) SetPIDs(pids ...int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := writeFile(filepath.Join(s.inst, "options", "event-fork"), "1", os.O_TRUNC); err != nil {
		return fmt.Errorf("kernel: make instance %s follow forks: %w", s.name, err)
	}
	var b strings.Builder
	for i, pid := range pids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(pid))
	}
	// O_TRUNC replaces the list.
	if err := writeFile(filepath.Join(s.inst, "set_event_pid"), b.String(), os.O_TRUNC); err != nil {
		return fmt.Errorf("kernel: set the pid filter of instance %s to %v: %w", s.name, pids, err)
	}
	return nil
}

// Hits returns the hit counts of the session's probes, keyed by the
// user's "GROUP/EVENT", from uprobe_profile (and kprobe_profile).
//
// The kernel counts a hit before it filters by pid: these are the hits
// of every process that ran the probed instruction while the event was
// enabled, not only of the processes SetPIDs chose.
func (s *Session) Hits() (map[string]uint64, error) {
	s.mu.Lock()
	byKname := make(map[string]string, len(s.byKname))
	hits := make(map[string]uint64, len(s.byKname))
	files := map[string]bool{}
	for k, p := range s.byKname {
		user := p.info.group + "/" + p.info.name
		byKname[k] = user
		hits[user] = 0
		if p.file == kprobeEvents {
			files[kprobeProfile] = true
		} else {
			files[uprobeProfile] = true
		}
	}
	s.mu.Unlock()
	for file := range files {
		data, err := os.ReadFile(s.tfs.path(file))
		if err != nil {
			return nil, fmt.Errorf("kernel: read hit counts: %w", err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			// "  PATH EVENT COUNT" (uprobes, PATH may hold spaces),
			// "  EVENT HITS MISSES" (kprobes): the event is the
			// first word that is one of ours.
			w := strings.Fields(l)
			if len(w) < 2 {
				continue
			}
			if file == kprobeProfile {
				if user, ok := byKname[w[0]]; ok {
					n, _ := strconv.ParseUint(w[1], 10, 64)
					hits[user] += n
				}
				continue
			}
			if user, ok := byKname[w[len(w)-2]]; ok {
				n, _ := strconv.ParseUint(w[len(w)-1], 10, 64)
				hits[user] += n
			}
		}
	}
	return hits, nil
}

// Lost returns how many events the session's instance lost: overwritten
// ("overrun") or dropped because a CPU's buffer was full ("dropped
// events"), summed over the per-CPU stats. Events then have fewer events
// than Hits counts for the traced processes.
func (s *Session) Lost() (uint64, error) {
	cpus, err := filepath.Glob(filepath.Join(s.inst, "per_cpu", "cpu*", "stats"))
	if err != nil || len(cpus) == 0 {
		return 0, fmt.Errorf("kernel: no per-CPU stats in instance %s: %v", s.name, err)
	}
	var lost uint64
	for _, f := range cpus {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, fmt.Errorf("kernel: read %s: %w", f, err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok || k != "overrun" && k != "dropped events" {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("kernel: %s: bad %q line", f, l)
			}
			lost += n
		}
	}
	return lost, nil
}

// Close disables and removes the session's events and its instance. It
// stops the running Events calls first (they read what is buffered and
// return). The first call does the work and returns its error; later
// calls return that error again.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone
		return s.closeErr
	}
	s.closed = true
	for st := range s.stops {
		st.stop()
	}
	s.mu.Unlock()
	s.closeErr = s.close()
	close(s.closeDone)
	return s.closeErr
}

func (s *Session) close() error {

	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(readerStopTimeout):
		s.warn(fmt.Errorf("kernel: session %s: a reader of trace_pipe did not stop within %v", s.name, readerStopTimeout))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	// The instance first: removing it disables the events enabled in
	// it (an enabled event cannot be removed), in one step where
	// disabling them first would cost a second wait for the kernel
	// (~30 ms here).
	if err := s.rmdirInstance(); err != nil {
		errs = append(errs, err)
		if s.enabled && len(s.probes) > 0 {
			if err := writeFile(filepath.Join(s.inst, "events", s.name, "enable"), "0", os.O_TRUNC); err != nil {
				errs = append(errs, fmt.Errorf("kernel: disable the events of %s: %w", s.name, err))
			}
		}
	}
	s.enabled = false
	for _, p := range s.probes {
		if err := s.tfs.removeEvent(p.file, s.name, p.kname); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Session) rmdirInstance() error {
	deadline := time.Now().Add(removeTimeout)
	for {
		err := unix.Rmdir(s.inst)
		switch {
		case err == nil || err == unix.ENOENT || err == unix.ENODEV:
			// ENODEV: another process is removing it right now.
			return nil
		case err == unix.EBUSY && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return fmt.Errorf("kernel: remove tracefs instance %s: %w", s.inst, err)
	}
}

// removeEvent removes GROUP/EVENT from file ("-:GROUP/EVENT"), retrying
// while the kernel reports it busy. An event that is already gone is not
// an error.
func (t *Tracefs) removeEvent(file, group, event string) error {
	line := "-:" + group + "/" + event
	deadline := time.Now().Add(removeTimeout)
	for {
		err := writeFile(t.path(file), line+"\n", os.O_APPEND)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return t.kernelError(file, line, err)
	}
}

// probeEvents returns the GROUP/EVENT names defined in a *_events file.
func (t *Tracefs) probeEvents(file string) ([][2]string, error) {
	data, err := os.ReadFile(t.path(file))
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

// removeGroupEvents removes every uprobe and kprobe event of group.
func removeGroupEvents(t *Tracefs, group string) error {
	var errs []error
	for _, file := range []string{uprobeEvents, kprobeEvents} {
		if !exists(t.path(file)) {
			continue
		}
		evs, err := t.probeEvents(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ge := range evs {
			if ge[0] == group {
				if err := t.removeEvent(file, ge[0], ge[1]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
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

// alive reports whether a process pid exists (EPERM: it exists, we may
// not signal it).
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// CleanStale removes the instances and event groups of sessions whose
// process is gone (a ptprobe that was killed before it could Close),
// and returns what it removed ("instances/ptprobe_123",
// "uprobe_events:ptprobe_123/ev"). Sessions of live processes are left
// alone.
//
// A session is recognized by its name alone: a process that reuses the
// pid of a dead ptprobe keeps its leftovers alive until it exits too, and
// a ptprobe in another pid namespace sharing this tracefs looks dead.
func CleanStale(t *Tracefs) ([]string, error) {
	var removed []string
	var errs []error
	if ents, err := os.ReadDir(t.path("instances")); err == nil {
		for _, e := range ents {
			pid, ok := sessionPID(e.Name())
			if !ok || alive(pid) {
				continue
			}
			s := &Session{inst: t.path("instances", e.Name())}
			if err := s.rmdirInstance(); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "instances/"+e.Name())
		}
	}
	for _, file := range []string{uprobeEvents, kprobeEvents} {
		if !exists(t.path(file)) {
			continue
		}
		evs, err := t.probeEvents(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernel: read %s: %w", file, err))
			continue
		}
		for _, ge := range evs {
			pid, ok := sessionPID(ge[0])
			if !ok || alive(pid) {
				continue
			}
			// Enabled in the top-level buffer by someone else: it
			// cannot be removed before it is disabled there.
			writeFile(t.path("events", ge[0], ge[1], "enable"), "0", os.O_TRUNC)
			if err := t.removeEvent(file, ge[0], ge[1]); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, file+":"+ge[0]+"/"+ge[1])
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("kernel: remove stale sessions: %w", errors.Join(errs...))
	}
	return removed, nil
}

// writeFile writes data to a tracefs file in one write, opened write-only
// with the extra flags (os.O_APPEND for *_events files: a truncating open
// of those removes every definition of every user).
func writeFile(path, data string, flags int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|flags, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(data))
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}
