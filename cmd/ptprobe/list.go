package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// listCmd is ptprobe list: the functions of an ELF file, with link-time
// address, file offset (what a PATH:OFFSET spec takes) and size, then its
// USDT probes (docs/DESIGN.md §9).
func (c *cli) listCmd() *cobra.Command {
	o := &listOptions{}
	cmd := &cobra.Command{
		Use:   "list PATH|LIB [GLOB]",
		Short: "list the functions and USDT probes of an ELF file",
		Long: `List the functions of an ELF file (a path, or a library name such as libc,
found as the dynamic linker finds it) with link-time address, file offset
(what a PATH:OFFSET spec takes) and size, C++ names demangled with the
mangled name beside them; then its USDT (SDT) probes with their file
offsets, semaphores (file offsets; "-" for none) and argument specs, as
readelf -n shows them. GLOB selects functions by name (mangled or
demangled) and USDT probes by PROVIDER:NAME or NAME. With --vars, the
parameters and locals of FUNCTION line by line, from DWARF.`,
		Example: "  ptprobe list libc 'mem*'\n  ptprobe list ./prog 'ns::*'\n  ptprobe list --usdt /usr/bin/python3.11\n  ptprobe list --vars ./prog work",
		Args: func(cmd *cobra.Command, args []string) error {
			if o.vars && len(args) != 2 {
				return errors.New("list: usage: ptprobe list --vars PATH|LIB FUNCTION")
			}
			if len(args) < 1 || len(args) > 2 {
				return errors.New("list: usage: ptprobe list PATH|LIB [GLOB]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.vars {
				return listVarsRun(args, c.stdout)
			}
			return listRun(args, o, c.stdout)
		},
	}
	cmd.Flags().BoolVar(&o.mangled, "mangled", false, "show C++ functions by their mangled names only")
	cmd.Flags().BoolVar(&o.usdt, "usdt", false, "list the USDT probes only")
	cmd.Flags().BoolVar(&o.paths, "paths", false, "add the hit path an entry probe without Go handlers would take at each function and USDT probe: no-stop, or stop and why, by the rules that depend on the file alone (docs/DESIGN.md §8)")
	cmd.Flags().BoolVar(&o.vars, "vars", false, "list the parameters and locals of FUNCTION line by line, with where each is, from the debug information (perf probe -V)")
	return cmd
}

// listOptions are the flags of ptprobe list.
type listOptions struct {
	mangled, usdt, vars, paths bool
}

// listRun prints the functions and USDT probes of rest[0] whose names
// match rest[1].
func listRun(rest []string, o *listOptions, stdout io.Writer) error {
	file := rest[0]
	if !strings.Contains(file, "/") {
		found, err := elfsym.NewLibraries(elfsym.LibraryEnv{LDLibraryPath: os.Getenv("LD_LIBRARY_PATH")}).Find(file)
		if err != nil {
			prog, perr := exec.LookPath(file) // a program's name
			if perr != nil {
				return fmt.Errorf("list: %w", err)
			}
			found = prog
		}
		file = found
	}
	glob := "*"
	if len(rest) == 2 {
		glob = rest[1]
		if _, err := path.Match(glob, ""); err != nil {
			return fmt.Errorf("list: bad pattern %q: %w", glob, err)
		}
	}
	match := func(names ...string) bool {
		for _, n := range names {
			if ok, _ := path.Match(strings.ReplaceAll(glob, "/", "\x00"), strings.ReplaceAll(n, "/", "\x00")); ok {
				return true
			}
		}
		return false
	}
	f, err := elfsym.Open(file)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	defer f.Close()
	probes, err := f.USDTProbes()
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	// pathOf is the --paths column for the probe point at file offset off.
	pathOf := func(off uint64) string {
		if !o.paths {
			return ""
		}
		loc, err := resolve.In(f, &uprobe.Spec{Path: file, Offset: off})
		if err != nil {
			return "  not probeable here: " + err.Error()
		}
		if err := engine.NoStopAt(f, &loc); err != nil {
			return "  stop: " + err.Error()
		}
		return "  no-stop"
	}
	if !o.usdt {
		fmt.Fprintf(stdout, "%-18s %-10s %8s  %s\n", "ADDRESS", "OFFSET", "SIZE", "FUNCTION")
		for _, sym := range f.Symbols() {
			full, short := elfsym.Demangle(sym.Name)
			if !match(sym.Name, full, short) {
				continue
			}
			name := sym.Name
			if sym.Version != "" {
				name += "@" + sym.Version
			}
			if full != sym.Name && !o.mangled {
				name = full + "  [" + name + "]"
			}
			fmt.Fprintf(stdout, "0x%016x 0x%08x %8d  %s%s\n", sym.Value, sym.Offset, sym.Size, name, pathOf(sym.Offset))
		}
	}
	header := false
	for _, p := range probes {
		if !match(p.Provider+":"+p.Name, p.Name) {
			continue
		}
		if !header {
			if !o.usdt {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "%-10s %-10s  %-40s %s\n", "OFFSET", "SEMAPHORE", "USDT", "ARGS")
			header = true
		}
		sem := "-"
		if p.SemVaddr != 0 {
			sem = fmt.Sprintf("0x%08x", p.SemOffset)
		}
		fmt.Fprintf(stdout, "0x%08x %-10s  %-40s %s%s\n", p.Offset, sem, "usdt:"+p.Provider+":"+p.Name, p.ArgText, pathOf(p.Offset))
	}
	return nil
}
