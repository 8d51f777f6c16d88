package kernel

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// readerStopTimeout bounds how long Close waits for Events calls to drain
// and return before it removes the instance anyway.
const readerStopTimeout = 5 * time.Second

// Options configure a Session. nil and the zero value are the defaults.
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
	// KeepStale skips the removal of what sessions of dead processes
	// left in tracefs, which NewSession does otherwise.
	KeepStale bool
	// Resolve says whose libraries the library names of AddUprobe's
	// specs ("libc:malloc") mean: give the program the session will
	// trace, and its environment, so that a library it finds only
	// through its own DT_RUNPATH or LD_LIBRARY_PATH is found too. nil:
	// the system's (resolve.Options' zero value).
	Resolve *resolve.Options
	// MaxProbes bounds how many probes one spec of AddUprobe may expand
	// to (resolve.Expand); 0 is resolve.DefaultMaxProbes.
	MaxProbes int
}

// Session is one run's probes on the kernel backend: a tracefs instance
// and an event group of its own, the probes defined in it and the
// mapping between the kernel's event names and the user's GROUP/EVENT.
//
// The methods of a Session are safe for concurrent use. Close removes
// everything the session made; it may be called from another goroutine
// while Events runs. After Close, the methods return errors wrapping
// os.ErrClosed.
type Session struct {
	tfs  *tracefs.Tracefs
	inst *tracefs.Instance
	opts Options
	// mono reports that the instance's clock is CLOCK_MONOTONIC, so
	// event times are comparable with the engine's.
	mono bool

	resMu sync.Mutex // the Resolver is not safe for concurrent use
	res   *resolve.Resolver

	mu      sync.Mutex
	probes  []*probe
	byKname map[string]*probe
	byUser  map[string]*probe
	enabled bool
	closed  bool
	// closeDone is closed when the first Close has finished.
	closeDone chan struct{}
	pipes     map[*tracefs.Pipe]struct{} // of the running Events calls
	readers   sync.WaitGroup

	badLines atomic.Uint64
}

// probe is a probe defined by a session.
type probe struct {
	kname string // kernel event name in the session's group
	file  string // tracefs.UprobeEvents or tracefs.KprobeEvents
	line  string // the definition written
	spec  *uprobe.Spec
	info  *tracefs.EventInfo
	id    elfsym.FileID // a uprobe's file
}

// NewSession opens tracefs (mounting it at /sys/kernel/tracing when it is
// not mounted and we are root; errors wrap ErrNoTracefs when there is
// none) and makes a session in it; nil opts are the defaults. The session
// removes what dead sessions left behind (unless opts.KeepStale), then
// creates its tracefs instance, SessionPrefix + "<pid>" (or "<pid>_<n>"),
// with CLOCK_MONOTONIC timestamps where the kernel has them. Close
// removes it and every probe of the session.
func NewSession(opts *Options) (*Session, error) {
	tfs, err := tracefs.Open()
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	return newSession(tfs, opts)
}

// newSession makes a session in tfs: it removes what dead sessions left
// behind (unless opts.KeepStale), creates the tracefs instance
// instances/ptprobe_<pid> (or ptprobe_<pid>_<n>), and sets the instance
// up: CLOCK_MONOTONIC timestamps ("mono"), the tgid column (record-tgid),
// addresses with kernel symbols (sym-addr), no overwriting of unread
// events (nooverwrite: a full buffer drops new events, which Lost counts)
// and buffer_percent 0, so that a poll on the pipe wakes on the first
// event on kernels that apply the watermark to it (6.18 wakes trace_pipe
// readers at once either way: ~0.1 ms measured here).
func newSession(tfs *tracefs.Tracefs, opts *Options) (*Session, error) {
	s := &Session{tfs: tfs, byKname: map[string]*probe{}, byUser: map[string]*probe{},
		pipes: map[*tracefs.Pipe]struct{}{}, closeDone: make(chan struct{})}
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
		if _, err := tfs.CleanStale(); err != nil {
			s.warn(fmt.Errorf("kernel: %w", err))
		}
	}
	inst, err := tfs.NewInstance(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	s.inst = inst
	// A group of this name can only be a leftover of a dead process
	// that had our pid: no live session of ours has it, since its
	// instance did not exist.
	if err := tfs.RemoveGroup(inst.Name); err != nil {
		return nil, errors.Join(fmt.Errorf("kernel: remove the leftover events of group %s: %w", inst.Name, err), inst.Remove())
	}
	if err := s.setup(); err != nil {
		return nil, errors.Join(err, inst.Remove())
	}
	s.res = resolve.New(s.opts.Resolve)
	return s, nil
}

func (s *Session) setup() error {
	if err := s.inst.Set("trace_clock", "mono"); err == nil {
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
		if err := s.inst.Set(o.file, o.val); err != nil {
			s.warn(fmt.Errorf("kernel: %w", err))
		}
	}
	if s.opts.BufferKB > 0 {
		if err := s.inst.Set("buffer_size_kb", strconv.Itoa(s.opts.BufferKB)); err != nil {
			return fmt.Errorf("kernel: the buffer size: %w", err)
		}
	}
	return nil
}

func (s *Session) warn(err error) {
	if s.opts.Warn != nil {
		s.opts.Warn(err)
	}
}

// errClosed is the error of a method of a closed Session.
func errClosed(what string) error {
	return fmt.Errorf("kernel: %s: the session is closed: %w", what, os.ErrClosed)
}

// definition is a probe as a session defined it in the kernel.
type definition struct {
	probe string // the user's "GROUP/EVENT"
	event string // the kernel's "GROUP/EVENT" (the session's group)
	file  string // "uprobe_events" or "kprobe_events"
	line  string // the definition written to file
}

// definitions lists the session's probes in the order they were added.
func (s *Session) definitions() []definition {
	s.mu.Lock()
	defer s.mu.Unlock()
	defs := make([]definition, len(s.probes))
	for i, p := range s.probes {
		defs[i] = definition{p.info.Group + "/" + p.info.Name, s.inst.Name + "/" + p.kname, p.file, p.line}
	}
	return defs
}

// AddUprobe resolves spec (a uprobe spec of uprobe.Parse; its library
// names as Options.Resolve says) and defines it in the session's group,
// appended to uprobe_events. A definition the kernel refuses returns a
// *KernelError with the kernel's message and caret. Probes added after
// Enable are enabled at once.
func (s *Session) AddUprobe(spec *uprobe.Spec) error {
	if spec.Kernel {
		return fmt.Errorf("kernel: probe %q is a kernel probe: add it with AddKprobe", spec.Text)
	}
	if !s.tfs.Features.UprobeEvents {
		return fmt.Errorf("kernel: probe %q: %w", spec.Text, ErrUprobesUnsupported)
	}
	// A glob, a USDT probe or a C++ name is the probes it names
	// (docs/DESIGN.md §9).
	s.resMu.Lock()
	specs, err := s.res.Expand(spec, &resolve.ExpandOptions{MaxProbes: s.opts.MaxProbes, Warn: s.warn})
	s.resMu.Unlock()
	if err != nil {
		return err
	}
	for _, c := range specs {
		if err := s.addUprobe(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) addUprobe(spec *uprobe.Spec) error {
	s.resMu.Lock()
	loc, err := resolveUprobe(s.res, spec)
	s.resMu.Unlock()
	if err != nil {
		return err
	}
	args, comm := s.withComm(loc.Args)
	if err := s.add(tracefs.UprobeEvents, spec, args, comm, func(kname string) string {
		return tracefs.UprobeLine(spec.Kind, s.inst.Name, kname, loc.Path, loc.Offset, loc.RefCtr, args)
	}); err != nil {
		return err
	}
	s.mu.Lock()
	s.byUser[spec.Probe()].id = loc.ID
	s.mu.Unlock()
	return nil
}

// AddKprobe defines a kernel probe (a spec of uprobe.ParseKprobe) in the
// session's group, appended to kprobe_events. Kernels without
// kprobe_events return an error wrapping ErrKprobesUnsupported.
func (s *Session) AddKprobe(spec *uprobe.Spec) error {
	if !spec.Kernel {
		return fmt.Errorf("kernel: probe %q is a uprobe spec: add it with AddUprobe", spec.Text)
	}
	if !s.tfs.Features.KprobeEvents {
		return fmt.Errorf("kernel: probe %q: %w", spec.Text, ErrKprobesUnsupported)
	}
	if spec.MaxActive > 0 && !s.tfs.Features.MaxActive {
		return fmt.Errorf("kernel: probe %q: this kernel does not take r[MAXACTIVE]", spec.Text)
	}
	args, comm := s.withComm(spec.Args)
	return s.add(tracefs.KprobeEvents, spec, args, comm, func(kname string) string {
		return tracefs.KprobeLine(spec, s.inst.Name, kname, args)
	})
}

// withComm returns args with the hidden $comm fetch-arg
// (tracefs.CommArgName) before them, and true, when the kernel has $comm
// and the probe has room for it; else args and false.
func (s *Session) withComm(args []uprobe.FetchArg) ([]uprobe.FetchArg, bool) {
	if !s.tfs.Features.Comm || len(args) >= tracefs.MaxArgs {
		return args, false
	}
	for _, a := range args {
		if a.Name == tracefs.CommArgName {
			return args, false
		}
	}
	// First: the kernel sizes an event's strings before it copies
	// them, and a string longer than it records (4095 bytes) is sized 0
	// and then copied into the room of the strings after it. Placed
	// first, the comm never changes what the probe's own args show.
	return append([]uprobe.FetchArg{tracefs.CommArg()}, args...), true
}

// add defines the probe of spec in file, with the fetch-args args (as
// written to the kernel: comm says the first is the hidden $comm), whose
// line render writes under a kernel event name.
func (s *Session) add(file string, spec *uprobe.Spec, args []uprobe.FetchArg, comm bool, render func(kname string) string) error {
	info := &tracefs.EventInfo{Group: spec.Group, Name: spec.Event, Kind: spec.Kind, CommArg: comm}
	for i := range args {
		info.Args = append(info.Args, tracefs.ArgInfo{Name: args[i].Name, Type: args[i].Type})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("add probe " + spec.Probe())
	}
	user := spec.Probe()
	if s.byUser[user] != nil {
		return fmt.Errorf("kernel: probe %s is defined twice in this session", user)
	}
	p := &probe{kname: s.kernelName(spec.Group, spec.Event), file: file, spec: spec, info: info}
	p.line = render(p.kname)
	if err := s.tfs.Define(file, p.line); err != nil {
		var ke *KernelError
		if errors.As(err, &ke) {
			return err
		}
		return fmt.Errorf("kernel: probe %s: %w", user, err)
	}
	format, err := s.inst.Format(s.inst.Name, p.kname)
	if err == nil {
		err = tracefs.CheckFormat(format, info.Args)
	}
	if err != nil {
		rerr := s.tfs.RemoveEvent(file, s.inst.Name, p.kname)
		return errors.Join(fmt.Errorf("kernel: probe %s: the kernel's event %s/%s is not what was defined (%q): %w", user, s.inst.Name, p.kname, p.line, err), rerr)
	}
	if s.enabled {
		if err := s.inst.Enable(s.inst.Name, p.kname, true); err != nil {
			rerr := s.tfs.RemoveEvent(file, s.inst.Name, p.kname)
			return errors.Join(fmt.Errorf("kernel: enable probe %s (%s): %w", user, p.line, err), rerr)
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
	suffix := "_" + strings.TrimPrefix(s.inst.Name, SessionPrefix)
	base := group + "__" + event
	if len(base)+len(suffix) > tracefs.MaxNameLen {
		h := fnv.New32a()
		h.Write([]byte(base))
		tag := fmt.Sprintf("_%08x", h.Sum32())
		base = base[:tracefs.MaxNameLen-len(suffix)-len(tag)] + tag
	}
	name := base + suffix
	for n := 2; s.byKname[name] != nil; n++ {
		// Distinct user names that map to one kernel name
		// ("a__b"/"c" and "a"/"b__c").
		tag := "_" + strconv.Itoa(n)
		b := base
		if len(b)+len(tag)+len(suffix) > tracefs.MaxNameLen {
			b = b[:tracefs.MaxNameLen-len(tag)-len(suffix)]
		}
		name = b + tag + suffix
	}
	return name
}

// hasProbes reports whether the session has probes.
func (s *Session) hasProbes() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.probes) > 0
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
		return errClosed("enable or disable")
	}
	if len(s.probes) == 0 {
		if on {
			return errors.New("kernel: the session has no probes to enable")
		}
		return nil
	}
	// The group's enable file switches all of its events at once.
	if err := s.inst.Enable(s.inst.Name, "", on); err != nil {
		if on {
			return s.findRefused(err)
		}
		return fmt.Errorf("kernel: disable the events of %s: %w", s.inst.Name, err)
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
	group := s.inst.Name
	disable := func() error {
		if err := s.inst.Enable(group, "", false); err != nil {
			return fmt.Errorf("kernel: disable the events of %s after a failed enable: %w", group, err)
		}
		return nil
	}
	if err := disable(); err != nil {
		return errors.Join(fmt.Errorf("kernel: enable the events of %s: %w", group, groupErr), err)
	}
	var named []string // the first maxRefusedNamed refused probes
	var first error    // the errno of the first
	n := 0
	for _, p := range s.probes {
		err := s.inst.Enable(group, p.kname, true)
		if err == nil {
			continue
		}
		if n == 0 {
			first = err
		}
		if n++; n <= maxRefusedNamed {
			named = append(named, fmt.Sprintf("%s/%s (%q, defined as %q): %v", p.info.Group, p.info.Name, p.spec.Text, p.line, err))
		}
	}
	derr := disable()
	var err error
	switch {
	case n == 0:
		// Each alone was taken: a limit of the whole, not one probe.
		err = fmt.Errorf("kernel: enable the events of %s: %w (yet the kernel enabled each of its %d probes alone)", group, groupErr, len(s.probes))
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
func (s *Session) SetPIDs(pids ...int) error { return s.setPIDs(true, pids) }

// setPIDs is SetPIDs, following forks or not.
func (s *Session) setPIDs(follow bool, pids []int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("set the pid filter")
	}
	if err := s.inst.SetPIDs(follow, pids); err != nil {
		return fmt.Errorf("kernel: %w", err)
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
	counts, err := s.counts()
	if err != nil {
		return nil, err
	}
	hits := make(map[string]uint64, len(counts))
	for p, c := range counts {
		hits[p.spec.Probe()] = c.Hits
	}
	return hits, nil
}

// counts reads the profile counts of the session's probes.
func (s *Session) counts() (map[*probe]tracefs.Count, error) {
	s.mu.Lock()
	probes := append([]*probe(nil), s.probes...)
	s.mu.Unlock()
	names := map[string]map[string]bool{} // profile -> kernel names
	for _, p := range probes {
		profile := tracefs.UprobeProfile
		if p.file == tracefs.KprobeEvents {
			profile = tracefs.KprobeProfile
		}
		if names[profile] == nil {
			names[profile] = map[string]bool{}
		}
		names[profile][p.kname] = true
	}
	byName := map[string]tracefs.Count{}
	for profile, events := range names {
		c, err := s.tfs.Profile(profile, events)
		if err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		for k, v := range c {
			byName[k] = v
		}
	}
	counts := make(map[*probe]tracefs.Count, len(probes))
	for _, p := range probes {
		counts[p] = byName[p.kname]
	}
	return counts, nil
}

// Lost returns how many events the session's instance lost: overwritten
// or dropped because a CPU's buffer was full (Options.BufferKB), summed
// over the CPUs. Events then delivers fewer events than Hits counts for
// the traced processes.
func (s *Session) Lost() (uint64, error) {
	n, err := s.inst.Lost()
	if err != nil {
		return 0, fmt.Errorf("kernel: %w", err)
	}
	return n, nil
}

// Events reads the session's events from its instance's trace_pipe and
// calls fn with each, in time order, until ctx is done or the session is
// closed; it then reads what is still buffered without waiting (so that
// the events of a program that has exited are all delivered) and returns
// nil. It returns fn's error as soon as fn returns one, and the errors of
// reading trace_pipe. fn runs on the goroutine that called Events.
//
// Event times are those of the instance's clock, CLOCK_MONOTONIC where
// the kernel has it, with the microsecond resolution trace_pipe prints;
// CPU is the CPU the probe fired on.
//
// fn may keep the event. Lines that cannot be parsed are passed to
// Options.Warn. PID is the thread's tgid from /proc (once per thread),
// else the kernel's tgid column, else the TID.
//
// trace_pipe is a consuming read: run one Events per session at a time.
func (s *Session) Events(ctx context.Context, fn func(*uprobe.Event) error) error {
	read, err := s.openEvents(ctx, fn)
	if err != nil {
		return err
	}
	return read()
}

// openEvents opens trace_pipe for Events and returns the read, so that a
// Close from then on waits for it (a reader started on a goroutine might
// otherwise open the pipe only after a Close).
func (s *Session) openEvents(ctx context.Context, fn func(*uprobe.Event) error) (func() error, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed("read events")
	}
	pipe, err := s.inst.OpenPipe()
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("kernel: events of %s: %w", s.inst.Name, err)
	}
	s.pipes[pipe] = struct{}{}
	s.readers.Add(1)
	s.mu.Unlock()
	return func() error {
		defer func() {
			s.mu.Lock()
			delete(s.pipes, pipe)
			s.mu.Unlock()
			pipe.Close()
			s.readers.Done()
		}()
		defer context.AfterFunc(ctx, pipe.Stop)()
		bad := func(err error) {
			s.badLines.Add(1)
			s.warn(err)
		}
		return pipe.Read(s.lookup, fn, bad)
	}, nil
}

// lookup maps a kernel event name to its probe's info.
func (s *Session) lookup(kname string) *tracefs.EventInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.byKname[kname]; p != nil {
		return p.info
	}
	return nil
}

// Close disables and removes the session's events and its instance. It
// stops the running Events calls first (they read what is buffered and
// return). The first call does the work and returns its error; later
// calls wait for it to be done and return os.ErrClosed, as a second
// Close of cilium's tracefs events does.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone
		return os.ErrClosed
	}
	s.closed = true
	for pipe := range s.pipes {
		pipe.Stop()
	}
	s.mu.Unlock()
	err := s.close()
	close(s.closeDone)
	return err
}

func (s *Session) close() error {
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(readerStopTimeout):
		s.warn(fmt.Errorf("kernel: session %s: a reader of trace_pipe did not stop within %v", s.inst.Name, readerStopTimeout))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	// The instance first: removing it disables the events enabled in
	// it (an enabled event cannot be removed), in one step where
	// disabling them first would cost a second wait for the kernel
	// (~30 ms here).
	if err := s.inst.Remove(); err != nil {
		errs = append(errs, fmt.Errorf("kernel: %w", err))
		if s.enabled && len(s.probes) > 0 {
			if err := s.inst.Enable(s.inst.Name, "", false); err != nil {
				errs = append(errs, fmt.Errorf("kernel: disable the events of %s: %w", s.inst.Name, err))
			}
		}
	}
	s.enabled = false
	for _, p := range s.probes {
		if err := s.tfs.RemoveEvent(p.file, s.inst.Name, p.kname); err != nil {
			errs = append(errs, err)
		}
	}
	s.resMu.Lock()
	s.res.Close()
	s.resMu.Unlock()
	return errors.Join(errs...)
}
