package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: --version (and -v) print one line naming ptprobe, its
// version and the Go it was built with, and exit 0.
func TestVersion(t *testing.T) {
	for _, flag := range []string{"--version", "-v"} {
		r := ptprobe(t, flag)
		if r.status != 0 || r.stderr != "" {
			t.Fatalf("%s: status %d, stderr %q", flag, r.status, r.stderr)
		}
		want := regexp.MustCompile(`^ptprobe \S+ (\S+ )?` + regexp.QuoteMeta(runtime.Version()) + ` linux/amd64\n$`)
		if !want.MatchString(r.stdout) {
			t.Errorf("%s printed %q, want it to match %s", flag, r.stdout, want)
		}
	}
}

// TestUsage: no command is the usage on stderr and status 2; help is the
// usage on stdout and status 0; an unknown command is an error with
// cobra's suggestion.
func TestUsage(t *testing.T) {
	r := ptprobe(t)
	if r.status != 2 || r.stdout != "" || !strings.Contains(r.stderr, "Available Commands:") || !strings.Contains(r.stderr, "uprobe_events grammar") {
		t.Errorf("no command: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r = ptprobe(t, args...)
		if r.status != 0 || !strings.Contains(r.stdout, "trace ") || !strings.Contains(r.stdout, "compare ") || !strings.Contains(r.stdout, "list ") {
			t.Errorf("%v: status %d, stdout %q", args, r.status, r.stdout)
		}
		if strings.Contains(r.stdout, "man ") {
			t.Errorf("%v: the hidden man command is listed:\n%s", args, r.stdout)
		}
	}
	r = ptprobe(t, "trac", "-e", "libc:malloc", "--", "true")
	if r.status != 2 || !strings.HasPrefix(r.stderr, `ptprobe: unknown command "trac"`) || !strings.Contains(r.stderr, "Did you mean this?\n\ttrace\n") {
		t.Errorf("unknown command: status %d, stderr %q", r.status, r.stderr)
	}
	r = ptprobe(t, "trace", "--no-such-flag", "--", "true")
	if r.status != 2 || r.stderr != "ptprobe: trace: unknown flag: --no-such-flag\n" {
		t.Errorf("unknown flag: status %d, stderr %q", r.status, r.stderr)
	}
	r = ptprobe(t, "list")
	if r.status != 2 || !strings.Contains(r.stderr, "usage: ptprobe list PATH|LIB [GLOB]") {
		t.Errorf("list without a file: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestCompletion: each shell's completion script is real syntax of that
// shell (checked by the shell itself where it is installed), and the
// completions of trace's flags and their values come from the command
// definitions.
func TestCompletion(t *testing.T) {
	shells := []struct {
		name  string
		check []string // the shell's own syntax check of a file
	}{
		{"bash", []string{"bash", "-n"}},
		{"zsh", []string{"zsh", "-n"}},
		{"fish", []string{"fish", "--no-execute"}},
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			r := ptprobe(t, "completion", sh.name)
			if r.status != 0 || r.stderr != "" {
				t.Fatalf("status %d, stderr %q", r.status, r.stderr)
			}
			if !strings.Contains(r.stdout, "__complete") || !strings.Contains(r.stdout, "ptprobe") {
				t.Fatalf("the %s script does not call ptprobe __complete:\n%.400s", sh.name, r.stdout)
			}
			shell, err := exec.LookPath(sh.check[0])
			if err != nil {
				t.Skipf("%s is not installed: its script cannot be syntax-checked here", sh.name)
			}
			script := filepath.Join(t.TempDir(), "ptprobe."+sh.name)
			if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(shell, append(sh.check[1:], script)...).CombinedOutput()
			if err != nil {
				t.Errorf("%s %v: %v\n%s", shell, sh.check[1:], err, out)
			}
		})
	}
	// What the scripts ask ptprobe: the flags of trace, and the words
	// of --backend.
	r := ptprobe(t, "__complete", "trace", "--")
	for _, flag := range []string{"--event", "--format", "--set-retval", "--pid", "--latency"} {
		if !strings.Contains(r.stdout, flag+"\t") {
			t.Errorf("trace -- completes without %s:\n%s", flag, r.stdout)
		}
	}
	r = ptprobe(t, "__complete", "trace", "--backend", "")
	if !strings.HasPrefix(r.stdout, "ptrace\nkernel\n:4\n") {
		t.Errorf("trace --backend completes to %q, want ptrace, kernel and no file names (:4)", r.stdout)
	}
	r = ptprobe(t, "__complete", "tr")
	if !strings.HasPrefix(r.stdout, "trace\t") {
		t.Errorf("tr completes to %q", r.stdout)
	}
}

// TestManPages: the hidden man command writes a page per command, made
// from the same definitions as --help: trace's names its flags, and
// renders with man's own formatter where it is installed.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	r := ptprobe(t, "man", dir)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	for _, page := range []string{"ptprobe.1", "ptprobe-trace.1", "ptprobe-compare.1", "ptprobe-list.1", "ptprobe-completion-bash.1"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Errorf("no page %s: %v", page, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ptprobe-man.1")); err == nil {
		t.Errorf("the hidden man command has a page of its own")
	}
	b, err := os.ReadFile(filepath.Join(dir, "ptprobe-trace.1"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{`.TH "PTPROBE-TRACE" "1"`, `\fB--set-retval\fP`, `\fB-p\fP, \fB--pid\fP`, "stay in the program", `.SH EXAMPLE`} {
		if !strings.Contains(page, want) {
			t.Errorf("ptprobe-trace.1 does not contain %q", want)
		}
	}
	r = ptprobe(t, "man")
	if r.status != 2 || !strings.Contains(r.stderr, "accepts 1 arg") {
		t.Errorf("man without DIR: status %d, stderr %q", r.status, r.stderr)
	}

	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed: the page cannot be rendered here")
	}
	// -ww: every warning; -z: no output, only the check.
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(dir, "ptprobe-trace.1"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff on ptprobe-trace.1: %v\n%s", err, stderr.String())
	}
}
