// Package kernel is ptprobe's kernel backend: it runs the same probe specs
// as the ptrace engine through the kernel's own dynamic events (tracefs
// uprobe_events, and kprobe_events where the kernel has them), reads the
// hits back from trace_pipe and turns them into the same uprobe.Event, so
// that `ptprobe compare` can diff the two backends.
//
// Design (DESIGN.md §7):
//   - tracefs is found at /sys/kernel/tracing (mounted there when absent
//     and we are root), else /sys/kernel/debug/tracing; what the kernel
//     supports is read from its README, never guessed from its version.
//   - Event definitions are global, so every Session names its events
//     explicitly in a group of its own ("ptprobe_<pid>", "_<n>" appended
//     for further sessions of one process) and maps the user's GROUP/EVENT
//     to kernel event names and back.
//   - Buffers are not global: each Session makes a tracefs instance of the
//     same name, enables its events only there and reads only that
//     instance's trace_pipe, so concurrent runs, parallel tests and other
//     tracing users never see (or steal) each other's events.
//   - *_events files are only ever appended to (O_APPEND): a truncating
//     write removes every probe of every user. Removal is "-:GRP/EVENT"
//     after the event is disabled.
//   - Write errors carry the kernel's error_log message and caret.
//   - Sessions left behind by dead processes are removed on start.
//
// kernel never imports the ptrace engine; it resolves specs to file offsets
// itself with elfsym.
//
// What `compare` will see differ from the ptrace engine, because the
// kernel does it so (measured on 6.18):
//   - a failed memory read of an integer fetch-arg prints the value 0,
//     not "(fault)"; only strings show "(fault)";
//   - a string longer than 4095 bytes is "(fault)" when no string arg
//     follows it; otherwise the kernel copies a cut of it into the room
//     of the string args after it, which then show "(fault)" (the engine
//     cuts it at 4095 bytes);
//   - event times are CLOCK_MONOTONIC with microsecond resolution
//     (trace_pipe prints microseconds), CPU is the CPU of the hit;
//   - Session.Hits counts the hits of every process, before the pid
//     filter;
//   - $argN is rendered as its SysV register: uprobe_events refuses $argN
//     ("$arg* can be used only on function entry or exit") although the
//     README lists it;
//   - %ds, %es, %fs, %gs, %fs_base and %gs_base, which ptrace has, are
//     not registers the kernel's fetch-args know.
//
// Each probe also records $comm in a hidden first fetch-arg, so that an
// event's Comm is the thread's name at the hit, as the engine reports it,
// rather than trace_pipe's comm column (a small cache read when the line
// is printed, which shows "<...>" after a busy moment).
package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Default tracefs locations, in the order OpenTracefs tries them.
const (
	// TracefsPath is where tracefs is mounted on current systems, and
	// where OpenTracefs mounts it when nothing is there.
	TracefsPath = "/sys/kernel/tracing"
	// DebugfsTracingPath is the older location, an automount inside
	// debugfs.
	DebugfsTracingPath = "/sys/kernel/debug/tracing"
)

// tracefsMagic is TRACEFS_MAGIC of <linux/magic.h>: the f_type statfs
// reports for a tracefs mount.
const tracefsMagic = 0x74726163

// ErrNoTracefs is wrapped by OpenTracefs when no tracefs can be found or
// mounted.
var ErrNoTracefs = errors.New("tracefs is not available")

// Tracefs is an opened tracefs mount.
type Tracefs struct {
	// Root is the tracefs directory, e.g. /sys/kernel/tracing.
	Root string
	// Features is what the kernel supports, from its README and the
	// files present.
	Features Features
	// Mounted reports that OpenTracefs mounted tracefs at Root itself.
	// The mount is left in place: other users may rely on it by then.
	Mounted bool
}

// OpenTracefs finds tracefs: /sys/kernel/tracing if tracefs is mounted
// there, else mounted there by us when the directory exists and we are
// root, else /sys/kernel/debug/tracing. It reads the README to fill in
// Features. Errors wrap ErrNoTracefs when no tracefs is found.
func OpenTracefs() (*Tracefs, error) {
	return openTracefs(TracefsPath, DebugfsTracingPath)
}

// openTracefs is OpenTracefs with its two places as parameters.
func openTracefs(primary, fallback string) (*Tracefs, error) {
	if isTracefs(primary) {
		return OpenTracefsAt(primary)
	}
	var mountErr error
	if st, err := os.Stat(primary); err == nil && st.IsDir() && unix.Geteuid() == 0 {
		mountErr = unix.Mount("nodev", primary, "tracefs", 0, "")
		if mountErr == nil {
			t, err := OpenTracefsAt(primary)
			if t != nil {
				t.Mounted = true
			}
			return t, err
		}
	}
	// Looking inside debugfs's "tracing" triggers its automount.
	if _, err := os.Stat(filepath.Join(fallback, "README")); err == nil && isTracefs(fallback) {
		return OpenTracefsAt(fallback)
	}
	if mountErr != nil {
		return nil, fmt.Errorf("kernel: mount tracefs at %s: %v: %w", primary, mountErr, ErrNoTracefs)
	}
	if unix.Geteuid() != 0 {
		return nil, fmt.Errorf("kernel: tracefs is not mounted at %s or %s, and mounting it needs root: %w", primary, fallback, ErrNoTracefs)
	}
	return nil, fmt.Errorf("kernel: no tracefs at %s or %s: %w", primary, fallback, ErrNoTracefs)
}

// OpenTracefsAt opens the tracefs mounted at root (tests, or a tracefs
// mounted elsewhere). It reads the README to fill in Features.
func OpenTracefsAt(root string) (*Tracefs, error) {
	readme, err := os.ReadFile(filepath.Join(root, "README"))
	if err != nil {
		return nil, fmt.Errorf("kernel: read tracefs README: %v: %w", err, ErrNoTracefs)
	}
	t := &Tracefs{Root: root, Features: ParseFeatures(string(readme))}
	// The README lists what the kernel was built with; the files are
	// what this mount offers (they are missing on a tracefs of a
	// kernel without the option even if a README says otherwise).
	f := &t.Features
	f.UprobeEvents = f.UprobeEvents && exists(filepath.Join(root, "uprobe_events"))
	f.KprobeEvents = f.KprobeEvents && exists(filepath.Join(root, "kprobe_events"))
	f.DynamicEvents = f.DynamicEvents && exists(filepath.Join(root, "dynamic_events"))
	f.ErrorLog = exists(filepath.Join(root, "error_log"))
	f.Instances = exists(filepath.Join(root, "instances"))
	return t, nil
}

func isTracefs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == tracefsMagic
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// path joins elements under the tracefs root.
func (t *Tracefs) path(elem ...string) string {
	return filepath.Join(append([]string{t.Root}, elem...)...)
}

// Features is what a kernel's tracing supports, as its README documents
// it (ParseFeatures) and, after OpenTracefs, as the files present confirm.
type Features struct {
	UprobeEvents  bool // uprobe_events: user-space probes can be defined
	KprobeEvents  bool // kprobe_events: kernel probes can be defined
	DynamicEvents bool // dynamic_events, the generic interface
	ErrorLog      bool // error_log explains refused definitions (set by OpenTracefs)
	Instances     bool // instances/ exists (set by OpenTracefs)

	// UprobeReturnSuffix: "PATH:OFFSET%return" is understood (the "r"
	// command works on every kernel).
	UprobeReturnSuffix bool
	// KprobeReturnSuffix: "KSYM%return" is understood.
	KprobeReturnSuffix bool
	// MaxActive: "r[MAXACTIVE]" is understood.
	MaxActive bool
	// RefCtrOffset: uprobe places take "(REF_CTR_OFFSET)" (SDT semaphores).
	RefCtrOffset bool

	// FetchArgs are the fetch-arg forms the README lists, as written
	// ("%<register>", "$stack<index>", "$arg<N>", "+|-[u]<offset>(<fetcharg>)").
	FetchArgs []string
	// ArgN: "$argN" is understood. Kernels accept it only where the
	// function's arguments are known (kprobes and fprobes at a function
	// entry), never in uprobe_events: the kernel backend renders a
	// uprobe's $argN as its SysV register.
	ArgN bool
	// Comm: "$comm" is understood.
	Comm bool
	// UserDeref: "+u<offset>(...)" (a user-memory dereference from a
	// kprobe) is understood.
	UserDeref bool
	// Immediates: "\imm" and "\"string\"" fetch-args are understood.
	Immediates bool

	// Types are the fetch types the README lists, expanded ("s8", "s16",
	// ..., "x64", "string", "ustring", "symbol", ...; forms with
	// placeholders as written: "b<bit-width>@<bit-offset>/<container-size>").
	Types []string
}

// HasType reports whether the README lists the fetch type name.
func (f *Features) HasType(name string) bool {
	for _, t := range f.Types {
		if t == name {
			return true
		}
	}
	return false
}

// ParseFeatures reads the features from the text of a tracefs README.
// Unknown text is ignored, so READMEs of kernels older or newer than the
// ones seen parse to what they document that this package knows about.
func ParseFeatures(readme string) Features {
	var f Features
	lines := strings.Split(readme, "\n")
	for _, l := range lines {
		w := strings.Fields(l)
		if len(w) < 2 || w[1] != "-" {
			continue
		}
		switch w[0] {
		case "uprobe_events":
			f.UprobeEvents = true
		case "kprobe_events":
			f.KprobeEvents = true
		case "dynamic_events":
			f.DynamicEvents = true
		}
	}

	// The probe grammar is documented as "key: value" lines with
	// indented continuation lines, from "accepts: event-definitions" to
	// the "events/" section.
	start := -1
	for i, l := range lines {
		if strings.Contains(l, "accepts: event-definitions") {
			start = i
			break
		}
	}
	if start < 0 {
		return f
	}
	sections := map[string][]string{}
	var keys []string // in order, for the places (several "place" keys)
	key := ""
	for _, l := range lines[start:] {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "events/") {
			break
		}
		if k, v, ok := readmeKey(t); ok {
			key = k
			keys = append(keys, k)
			sections[k] = append(sections[k], v)
			continue
		}
		if key != "" {
			sections[key] = append(sections[key], t)
		}
	}

	for _, v := range sections["Format"] {
		if strings.Contains(v, "r[maxactive]") {
			f.MaxActive = true
		}
	}
	for _, k := range keys {
		for _, v := range sections[k] {
			isPlace := strings.HasPrefix(k, "place")
			switch {
			case isPlace && strings.Contains(v, "<path>"):
				f.UprobeReturnSuffix = f.UprobeReturnSuffix || strings.Contains(v, "%return")
				f.RefCtrOffset = f.RefCtrOffset || strings.Contains(v, "ref_ctr_offset")
			case k == "place (kretprobe)":
				f.KprobeReturnSuffix = f.KprobeReturnSuffix || strings.Contains(v, "%return")
			}
		}
	}

	for _, item := range splitList(sections["fetcharg"]) {
		f.FetchArgs = append(f.FetchArgs, item)
		switch {
		case item == "$arg<N>":
			f.ArgN = true
		case item == "$comm":
			f.Comm = true
		case strings.Contains(item, "[u]<offset>"):
			f.UserDeref = true
		case strings.HasPrefix(item, `\imm`):
			f.Immediates = true
		}
	}
	for _, item := range splitList(sections["type"]) {
		f.Types = append(f.Types, expandTypes(item)...)
	}
	return f
}

// readmeKey splits a README grammar line "key: value". Keys are words
// and spaces, optionally with a parenthesized qualifier ("place
// (kretprobe)"); continuation lines ("$stack<index>, ...",
// "r[maxactive][:...") do not match.
func readmeKey(t string) (key, value string, ok bool) {
	i := strings.Index(t, ": ")
	if i <= 0 {
		if strings.HasSuffix(t, ":") {
			i = len(t) - 1
		} else {
			return "", "", false
		}
	}
	k := t[:i]
	for j := 0; j < len(k); j++ {
		c := k[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == ' ' || c == '(' || c == ')' || c == '_') {
			return "", "", false
		}
	}
	if k[0] == ' ' || k[0] == '(' {
		return "", "", false
	}
	return k, strings.TrimSpace(t[min(i+2, len(t)):]), true
}

// splitList splits the comma-separated items of a README list spread over
// lines.
func splitList(lines []string) []string {
	var items []string
	for _, l := range lines {
		for _, it := range strings.Split(l, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
	}
	return items
}

// expandTypes expands the README's shorthand "s8/16/32/64" into s8, s16,
// s32, s64 and "%pd/%pD" into both; items with placeholders ('<') are
// kept whole.
func expandTypes(item string) []string {
	if strings.Contains(item, "<") || !strings.Contains(item, "/") {
		return []string{item}
	}
	parts := strings.Split(item, "/")
	first := parts[0]
	prefix := strings.TrimRight(first, "0123456789")
	out := []string{first}
	for _, p := range parts[1:] {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			out = append(out, prefix+p)
		} else {
			out = append(out, p)
		}
	}
	return out
}
