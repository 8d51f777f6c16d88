package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ptprobe/ptprobe/elfsym"
)

// listCmd is ptprobe list: the functions of an ELF file, with link-time
// address, file offset (what a PATH:OFFSET spec takes) and size.
func (c *cli) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list PATH|LIB [GLOB]",
		Short: "list the functions of an ELF file with address, file offset and size",
		Long: `List the functions of an ELF file (a path, or a library name such as libc,
found as the dynamic linker finds it) with link-time address, file offset
(what a PATH:OFFSET spec takes) and size; GLOB selects functions by name.`,
		Example: "  ptprobe list libc 'mem*'\n  ptprobe list ./prog",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return errors.New("list: usage: ptprobe list PATH|LIB [GLOB]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return listRun(args, c.stdout)
		},
	}
}

// listRun prints the functions of rest[0] whose names match rest[1].
func listRun(rest []string, stdout io.Writer) error {
	file := rest[0]
	if !strings.Contains(file, "/") {
		found, err := elfsym.NewLibraries(elfsym.LibraryEnv{LDLibraryPath: os.Getenv("LD_LIBRARY_PATH")}).Find(file)
		if err != nil {
			return fmt.Errorf("list: %w", err)
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
