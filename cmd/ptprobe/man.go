package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCmd is ptprobe man DIR, hidden: it writes the man pages of every
// command (ptprobe.1, ptprobe-trace.1, ...) into DIR, made from the same
// command definitions as --help, so that they cannot drift apart.
func (c *cli) manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "write the man pages of ptprobe's commands into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			header := &doc.GenManHeader{Section: "1", Source: "ptprobe " + cmd.Root().Version, Manual: "ptprobe manual"}
			if err := doc.GenManTree(cmd.Root(), header, dir); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			return nil
		},
	}
}

// completeWords completes the value of cmd's flag name with words.
func completeWords(cmd *cobra.Command, name string, words ...string) {
	// The flag is cmd's own: registering cannot fail.
	cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
}
