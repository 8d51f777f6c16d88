package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/elfsym"
)

// listCmd prints the functions of an ELF file: link-time address, file
// offset (what a PATH:OFFSET spec takes) and size.
func listCmd(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("list", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vars := fs.Bool("vars", false, "list the parameters and locals of function GLOB, line by line, from the debug information (perf probe -V)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: ptprobe list PATH|LIB [GLOB]\n       ptprobe list --vars PATH|LIB FUNCTION")
			return nil
		}
		return fmt.Errorf("list: %w", err)
	}
	rest := fs.Args()
	if len(rest) < 1 || len(rest) > 2 {
		return errors.New("list: usage: ptprobe list PATH|LIB [GLOB]")
	}
	file := rest[0]
	if !strings.Contains(file, "/") {
		found, err := elfsym.NewLibraries(elfsym.LibraryEnv{LDLibraryPath: os.Getenv("LD_LIBRARY_PATH")}).Find(file)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		file = found
	}
	if *vars {
		if len(rest) != 2 {
			return errors.New("list: usage: ptprobe list --vars PATH|LIB FUNCTION")
		}
		return listVars(stdout, file, rest[1])
	}
	glob := "*"
	if len(rest) == 2 {
		glob = rest[1]
		if _, err := path.Match(glob, ""); err != nil {
			return fmt.Errorf("list: bad pattern %q: %w", glob, err)
		}
	}
	f, err := elfsym.Open(file)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(stdout, "%-18s %-10s %8s  %s\n", "ADDRESS", "OFFSET", "SIZE", "FUNCTION")
	for _, sym := range f.Symbols() {
		if ok, _ := path.Match(glob, sym.Name); !ok {
			continue
		}
		name := sym.Name
		if sym.Version != "" {
			name += "@" + sym.Version
		}
		fmt.Fprintf(stdout, "0x%016x 0x%08x %8d  %s\n", sym.Value, sym.Offset, sym.Size, name)
	}
	return nil
}
