// Package resolve turns probe specs into locations in files, for both of
// ptprobe's backends: the library a name means, the file's identity
// (device and inode), the file offset of the probed instruction with the
// proof that it is an instruction boundary, the containing function and
// its calling convention, and the spec's fetch-args bound to it. The
// ptrace engine resolves a spec again in each file it finds mapped; the
// kernel backend once, before the program runs (docs/DESIGN.md §2).
//
// resolve imports arch, elfsym, uprobe and resolve/dwarf (what names
// mean, docs/DESIGN.md §10), and nothing else of this module.
package resolve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Options say whose libraries a library name means. The zero value is the
// system's libraries, as a program without its own search path finds
// them, with this process's LD_LIBRARY_PATH.
type Options struct {
	// Program is the program being traced: a library name is first
	// looked for in its DT_NEEDED closure, with its RPATH/RUNPATH.
	Program string
	// Env is the program's environment (nil: this process's), for its
	// LD_LIBRARY_PATH.
	Env []string
	// Libraries, if set, replaces the search Program and Env describe
	// (for instance one that also knows the files a running process
	// maps).
	Libraries *elfsym.Libraries
	// Names opens what names mean in a file, for Resolver.Expand; nil
	// is DWARFNames, the file's debug information.
	Names NamesOpener
	// Root is the directory through which the traced process's files
	// are seen as it sees them (elfsym.ProcessRoot: a process in
	// another mount namespace), "" for ours. An absolute path in a spec
	// is the process's path: looked up under Root first (its links
	// resolved as the process resolves them), then as a path of ours;
	// either way the probe applies to the file by device and inode.
	Root string
}

// ProcessOptions are the Options for the running process pid: its
// executable, the libraries it maps and would find with its own
// LD_LIBRARY_PATH, and its root when it has another mount namespace or
// root directory than ours (a container), where its paths are looked up
// (docs/DESIGN.md §2). What of /proc/PID cannot be read is left out
// (attaching then fails on the process itself, with the reason).
func ProcessOptions(pid int) *Options {
	root := elfsym.ProcessRoot(pid)
	proc := fmt.Sprintf("/proc/%d", pid)
	env := elfsym.LibraryEnv{Root: root, MappedAt: make(map[string]string)}
	opts := &Options{Root: root}
	if exe, err := os.Readlink(proc + "/exe"); err == nil && !strings.HasSuffix(exe, " (deleted)") {
		env.Program = exe
		opts.Program = exe
		if root != "" {
			if p, err := elfsym.InRoot(root, exe); err == nil {
				opts.Program = p
			}
		}
	}
	if maps, err := elfsym.ReadMaps(pid); err == nil {
		seen := make(map[string]bool)
		for _, m := range maps {
			if m.Inode == 0 || !strings.HasPrefix(m.Path, "/") || seen[m.Path] {
				continue
			}
			seen[m.Path] = true
			if p, ok := MappedPath(pid, root, m); ok {
				// By the name it maps it at, opened where it is.
				name := strings.TrimSuffix(m.Path, " (deleted)")
				env.Mapped = append(env.Mapped, name)
				if p != name {
					env.MappedAt[name] = p
				}
			}
		}
	}
	if data, err := os.ReadFile(proc + "/environ"); err == nil {
		env.LDLibraryPath = Getenv(strings.Split(string(data), "\x00"), "LD_LIBRARY_PATH")
	}
	opts.Libraries = elfsym.NewLibraries(env)
	return opts
}

// MappedPath returns a path of ours to the file mapping m of process pid
// maps, checked to be that file by device and inode: m's path under the
// process's root (ProcessRoot), as ours, or /proc/PID/map_files/ (which
// holds deleted files too, for those allowed to open it: CAP_SYS_ADMIN).
// The kernel writes a mapping's path from the reader's root where it can
// reach the file from there (a chroot) and from the process's mount
// namespace's root where it cannot (a container), so both are tried.
func MappedPath(pid int, root string, m elfsym.Mapping) (string, bool) {
	var cands []string
	path, deleted := strings.CutSuffix(m.Path, " (deleted)")
	if strings.HasPrefix(path, "/") && !deleted {
		if root != "" {
			cands = append(cands, root+path, path)
		} else {
			// Ours first: the paths users see stay theirs.
			cands = append(cands, path, fmt.Sprintf("/proc/%d/root%s", pid, path))
		}
	}
	cands = append(cands, fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End))
	for _, p := range cands {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && unix.Mkdev(unix.Major(st.Dev), unix.Minor(st.Dev)) == m.Dev && st.Ino == m.Inode {
			return p, true
		}
	}
	return "", false
}

// Resolver resolves specs, opening each file once however many probes it
// has (a probe on every function of libc opens libc once). It is not safe
// for concurrent use.
type Resolver struct {
	prog      string // Options.Program
	root      string // Options.Root
	libs      *elfsym.Libraries
	byPath    map[string]*elfsym.File
	openNames NamesOpener
	namesOf   map[string]Names
	namesErr  map[string]error
}

// New returns a Resolver; nil options are the zero Options.
func New(opts *Options) *Resolver {
	if opts == nil {
		opts = &Options{}
	}
	libs := opts.Libraries
	if libs == nil {
		env := opts.Env
		if env == nil {
			env = os.Environ()
		}
		libs = elfsym.NewLibraries(elfsym.LibraryEnv{Program: opts.Program, LDLibraryPath: Getenv(env, "LD_LIBRARY_PATH")})
	}
	return &Resolver{prog: opts.Program, root: opts.Root, libs: libs, byPath: make(map[string]*elfsym.File), openNames: opts.Names,
		namesOf: make(map[string]Names), namesErr: make(map[string]error)}
}

// program finds the ELF program called name (a base name): the traced
// program when it is called so, else the one of that name in PATH.
func (r *Resolver) program(name string) (string, error) {
	if r.prog != "" && filepath.Base(r.prog) == name {
		if f, err := r.Open(r.prog); err == nil && f.Type != 0 {
			return r.prog, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	if _, err := r.Open(p); err != nil {
		return "", err
	}
	return p, nil
}

// Getenv returns the value of the last entry for key in env (the one
// getenv(3) of the program sees), "" when none.
func Getenv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// Libraries is the library search of the Resolver.
func (r *Resolver) Libraries() *elfsym.Libraries { return r.libs }

// Close closes the files the Resolver opened and their Names;
// Locations and expanded specs stay valid.
func (r *Resolver) Close() error {
	for p, f := range r.byPath {
		f.Close()
		delete(r.byPath, p)
	}
	for p, n := range r.namesOf {
		if n != nil {
			n.Close()
		}
		delete(r.namesOf, p)
	}
	return nil
}

// Open opens the ELF file at path, once.
func (r *Resolver) Open(path string) (*elfsym.File, error) {
	if f, ok := r.byPath[path]; ok {
		return f, nil
	}
	f, err := elfsym.Open(path)
	if err != nil {
		return nil, err
	}
	r.byPath[path] = f
	return f, nil
}

// File opens the file spec probes: its path, or the library its name
// means. A library name that names no library is an error wrapping
// elfsym.ErrNoLibrary, with the closest names: much more often a typo or a
// garbled spec than a library that will appear from nowhere.
func (r *Resolver) File(spec *uprobe.Spec) (*elfsym.File, error) {
	if spec.Kernel {
		return nil, fmt.Errorf("probe %q is a kernel probe: it has no file to resolve", spec.Text)
	}
	path := spec.Path
	if spec.IsLibrary() {
		found, err := r.libs.Find(spec.Path)
		if err != nil {
			// A program's name ("usdt:python3.11:python:line"): the
			// traced program, or the one PATH has.
			prog, perr := r.program(spec.Path)
			if perr != nil {
				return nil, fmt.Errorf("probe %q: %w", spec.Text, err)
			}
			found = prog
		}
		path = found
	} else if r.root != "" && filepath.IsAbs(path) && !strings.HasPrefix(path, r.root+"/") {
		// The process's path first; a path of ours if it has none.
		in, ierr := elfsym.InRoot(r.root, path)
		if ierr == nil {
			if f, err := r.Open(in); err == nil {
				return f, nil
			}
		}
		f, err := r.Open(path)
		if err != nil {
			if ierr == nil {
				_, ierr = r.Open(in)
			}
			return nil, fmt.Errorf("probe %q: neither the traced process (root %s) nor ptprobe has it: %w", spec.Text, r.root, ierr)
		}
		return f, nil
	}
	f, err := r.Open(path)
	if err != nil {
		return nil, fmt.Errorf("probe %q: %w", spec.Text, err)
	}
	return f, nil
}

// Resolve resolves spec in the file it probes (File, then In).
func (r *Resolver) Resolve(spec *uprobe.Spec) (Location, error) {
	f, err := r.File(spec)
	if err != nil {
		return Location{}, err
	}
	return In(f, spec)
}

// Release hands the files the Resolver opened over to the caller, who
// closes them, and forgets them.
func (r *Resolver) Release() []*elfsym.File {
	var fs []*elfsym.File
	for p, f := range r.byPath {
		fs = append(fs, f)
		delete(r.byPath, p)
	}
	return fs
}
