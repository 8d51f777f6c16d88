package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// cli is one invocation of ptprobe: where its output goes, and the exit
// status its command chose.
type cli struct {
	stdout, stderr io.Writer
	status         int
}

const rootLong = `ptprobe traces probes on unmodified programs from an ordinary process,
through ptrace (no root, no BPF), or through the kernel's tracefs.

Probe specs use the kernel's uprobe_events grammar:
  p[:[GRP/]EVENT] PATH:OFFSET[(REF_CTR_OFFSET)]|PATH:SYMBOL[+OFFS]|LIB:SYMBOL [FETCHARGS]
  r[:[GRP/]EVENT] PATH:SYMBOL [FETCHARGS]       (or PATH:SYMBOL%return)
  p[:[GRP/]EVENT] usdt:PATH|LIB:PROVIDER:NAME [FETCHARGS]   (USDT probes)
  p[:[GRP/]EVENT] PATH:FILE:LINE|PATH:FUNC:+N [FETCHARGS]   (source lines, from DWARF)
SYMBOL may be a glob (libc:str*) or a C++ name (./prog:ns::Foo::bar).
FETCHARGS: [NAME=]%REG|@ADDR|@+OFFSET|$stack|$stackN|$comm|$retval|$argN|\IMM|\"STR"|+|-OFFS(FETCHARG)[:TYPE]
  or, from DWARF, a variable path: VAR, p->f, s.f, *p, a[N], or $params
TYPE: u8 u16 u32 u64 s8 s16 s32 s64 x8 x16 x32 x64 string char b<WIDTH>@<OFFSET>/<CONTAINER> TYPE[N]`

const rootExample = `  ptprobe trace -e 'libc:malloc size=%di:u64' -- ls /usr/bin
  ptprobe trace --count -e 'r libc:malloc' -p 1234 --duration 10s
  ptprobe compare -e 'libc:strlen s=+0(%di):string' -- sort /etc/services
  ptprobe trace --stack -e './prog:work a p->name' -e './prog:main.c:42 sum' -- ./prog
  ptprobe list libc 'mem*'
  ptprobe list --vars ./prog work
  source <(ptprobe completion bash)`

// rootCmd builds the command tree. Every command writes to c's stdout and
// stderr and leaves the exit status it chose in c.status; an error a
// command returns is ptprobe's own (exit status 2).
func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:     "ptprobe",
		Short:   "userspace probes through ptrace, with the kernel's uprobe_events grammar",
		Long:    rootLong,
		Example: rootExample,
		Version: version(),
		// ptprobe prints its own errors (reportError), once; a usage
		// error says what is wrong, not the whole usage.
		SilenceErrors: true,
		SilenceUsage:  true,
		// The man pages carry no generation date line of cobra's.
		DisableAutoGenTag: true,
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetVersionTemplate("ptprobe {{.Version}}\n")
	// "ptprobe trac": did you mean trace? (cobra's suggestions, on by
	// default; made explicit, as they are part of the interface).
	root.DisableSuggestions = false
	root.SuggestionsMinimumDistance = 2
	// A bad flag is an error of the command it was given to.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%s: %w", cmd.Name(), err)
	})
	root.AddCommand(c.traceCmd(), c.compareCmd(), c.listCmd(), c.runCmd(), c.manCmd())
	return root
}

// version is the module version ptprobe was built at ("(devel)" for a
// build from a checkout), with the VCS revision when the build recorded
// one, and the Go toolchain.
func version() string {
	v := "(devel)"
	var rev, dirty string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " " + rev + dirty
	}
	return v + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
