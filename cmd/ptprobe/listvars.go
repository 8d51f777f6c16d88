package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve/dwarf"
)

// listVarsRun is list --vars: args are the file (a path or a library
// name) and the function.
func listVarsRun(args []string, stdout io.Writer) error {
	file := args[0]
	if !strings.Contains(file, "/") {
		found, err := elfsym.NewLibraries(elfsym.LibraryEnv{LDLibraryPath: os.Getenv("LD_LIBRARY_PATH")}).Find(file)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		file = found
	}
	return listVars(stdout, file, args[1])
}

// listVars prints the parameters and locals of function fn of the ELF
// file at path, line by line with where each is there, as perf probe -V
// does (docs/DESIGN.md §10).
func listVars(stdout io.Writer, path, fn string) error {
	d, err := dwarf.Open(path, nil)
	if err != nil {
		return fmt.Errorf("list --vars: %w", err)
	}
	defer d.Close()
	fs := d.Funcs(fn)
	if len(fs) == 0 {
		// An alias (libc's malloc is __libc_malloc in its DWARF): the
		// function at the symbol's address.
		if ef, err := elfsym.Open(path); err == nil {
			if sym, err := ef.Lookup(fn); err == nil {
				if f, ok := d.FuncAt(sym.Value); ok {
					fs = append(fs, f)
				}
			}
			ef.Close()
		}
	}
	if len(fs) == 0 {
		return fmt.Errorf("list --vars: %s has no function %s in its debug information (%s)", path, fn, d.DebugPath)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, f := range fs {
		lines, err := d.VarsByLine(f)
		if err != nil {
			return fmt.Errorf("list --vars: %w", err)
		}
		fmt.Fprintf(tw, "%s at 0x%x\n", f.Name, f.Low)
		for _, l := range lines {
			fmt.Fprintf(tw, "  %s:%d\t%s+0x%x\n", filepath.Base(l.File), l.Line, f.Name, l.PC-f.Low)
			for _, v := range l.Vars {
				kind := "local"
				if v.Param {
					kind = "param"
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", kind, v.TypeName, v.Name, v.Where)
			}
		}
	}
	return tw.Flush()
}
