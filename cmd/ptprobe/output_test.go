package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestOutputSharedWithProgram: the traced program writes its own lines to
// the stdout ptprobe writes its events to (the default, without -o). Every
// line that comes out must be either a whole line of the program or a
// whole event, in JSON and in text; the program's lines in their order,
// and every event there once.
func TestOutputSharedWithProgram(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "chatty", testprog.PIE...)
	const n = 3000 // events of ~200 bytes: several times bufio's 64 KiB
	spec := "p:t/probed " + prog + ":probed i=%di:s64 s=+0(%si):string"
	textEvent := regexp.MustCompile(`^ *chatty-\d+ +\[\d{3}\] \d+\.\d{6}: probed: \(0x[0-9a-f]+\) i=(\d+) s="arg-(\d+)-[a-z]*"$`)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			r := ptprobe(t, "trace", "--format", format, "-e", spec, "--", prog, strconv.Itoa(n))
			if r.status != 0 {
				t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
			}
			if !strings.HasSuffix(r.stdout, "\n") {
				t.Errorf("output does not end in a newline: ...%q", r.stdout[max(0, len(r.stdout)-100):])
			}
			nextLine, nextEvent := 0, 0
			for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
				if strings.HasPrefix(l, "chatty ") {
					if want := fmt.Sprintf("chatty %d %s", nextLine, strings.Repeat(".", nextLine%97)); l != want {
						t.Fatalf("program line %q, want %q", l, want)
					}
					nextLine++
					continue
				}
				var i, si int64
				if format == "json" {
					var ev struct {
						Probe string `json:"probe"`
						Args  struct {
							I int64  `json:"i"`
							S string `json:"s"`
						} `json:"args"`
					}
					if err := json.Unmarshal([]byte(l), &ev); err != nil {
						t.Fatalf("line %q is neither the program's nor a JSON event: %v", l, err)
					}
					if ev.Probe != "t/probed" {
						t.Fatalf("event of probe %q in %q", ev.Probe, l)
					}
					i = ev.Args.I
					if _, err := fmt.Sscanf(ev.Args.S, "arg-%d-", &si); err != nil {
						t.Fatalf("event %q: s: %v", l, err)
					}
				} else {
					m := textEvent.FindStringSubmatch(l)
					if m == nil {
						t.Fatalf("line %q is neither the program's nor an event", l)
					}
					i, _ = strconv.ParseInt(m[1], 10, 64)
					si, _ = strconv.ParseInt(m[2], 10, 64)
				}
				if i != int64(nextEvent) || si != i {
					t.Fatalf("event %d has i=%d s=arg-%d", nextEvent, i, si)
				}
				nextEvent++
			}
			if nextLine != n || nextEvent != n {
				t.Errorf("%d program lines and %d events, want %d of each", nextLine, nextEvent, n)
			}
		})
	}
}

// writeRecorder keeps each Write call apart: what a write(2) would get.
type writeRecorder struct{ writes [][]byte }

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

// TestLineWriterChunks: the writer's writes each end at a line boundary,
// hold at most PIPE_BUF bytes unless they are one longer line alone, and
// are as full as the lines allow; nothing is lost or reordered, and an
// unfinished last line is written at Close.
func TestLineWriterChunks(t *testing.T) {
	var rec writeRecorder
	// No timed flush during the test: it would cut a write short.
	lw := newLineWriter(&rec, time.Hour)
	var all []byte
	add := func(b []byte) {
		lw.Write(b)
		all = append(all, b...)
	}
	for i := 0; i < 2000; i++ {
		line := []byte(fmt.Sprintf("line %d %s\n", i, strings.Repeat("x", i*31%300)))
		switch i {
		case 700: // a line longer than PIPE_BUF
			line = []byte(strings.Repeat("y", 3*pipeBuf) + "\n")
		case 701: // exactly PIPE_BUF with its newline
			line = []byte(strings.Repeat("z", pipeBuf-1) + "\n")
		case 900: // several lines in one Write, as --count and --latency give
			line = []byte(strings.Repeat("count 1\n", 1000))
		case 1000: // a line given in pieces
			add([]byte("piece one, "))
			add([]byte("piece two, "))
			line = []byte("end\n")
		}
		add(line)
	}
	add([]byte("unfinished"))
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(rec.writes, nil); !bytes.Equal(got, all) {
		t.Fatalf("the writes (%d bytes) are not the input (%d bytes)", len(got), len(all))
	}
	for i, w := range rec.writes {
		last := i == len(rec.writes)-1
		if !last && w[len(w)-1] != '\n' {
			t.Errorf("write %d (%d bytes) does not end at a line boundary: ...%q", i, len(w), w[max(0, len(w)-20):])
		}
		if len(w) > pipeBuf && bytes.IndexByte(w, '\n') != len(w)-1 {
			t.Errorf("write %d has %d bytes and more than one line", i, len(w))
		}
		if i+1 < len(rec.writes) && !last {
			next := rec.writes[i+1]
			first := next[:bytes.IndexByte(next, '\n')+1]
			if len(w) <= pipeBuf && len(first) > 0 && len(w)+len(first) <= pipeBuf {
				t.Errorf("write %d (%d bytes) could have taken the next line (%d bytes)", i, len(w), len(first))
			}
		}
	}
	if got := rec.writes[len(rec.writes)-1]; !bytes.HasSuffix(got, []byte("unfinished")) {
		t.Errorf("last write %q, want the unfinished line", got)
	}
}

// TestLongStringMarked: a string fetch-arg longer than the fetch limit
// (uprobe.MaxStringLen, 4095 bytes) shows its first 4095 bytes and a mark
// that it was cut: "..." after the closing quote in text, its name in
// "truncated" in JSON; one of exactly 4095 bytes is whole and unmarked.
func TestLongStringMarked(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "longstr", testprog.PIE...)
	spec := "p:t/takes " + prog + ":takes s=+0(%di):string n=%si:u64"
	alphabet := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return string(b)
	}
	lens := []int{4095, 4096, 100000}

	r := ptprobe(t, "trace", "-o", filepath.Join(dir, "text"), "-e", spec, "--", prog, "4095", "4096", "100000")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "text"))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(lens) {
		t.Fatalf("%d event lines, want %d", len(lines), len(lens))
	}
	for i, n := range lens {
		want := ` s="` + alphabet(4095) + `"`
		if n > 4095 {
			want += "..."
		}
		want += " n=" + strconv.Itoa(n)
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("string of %d bytes: line ends in %q, want %q", n, lines[i][max(0, len(lines[i])-40):], want[len(want)-40:])
		}
	}

	r = ptprobe(t, "trace", "--format", "json", "-o", filepath.Join(dir, "json"), "-e", spec, "--", prog, "4095", "4096", "100000")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "json"))
	lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(lens) {
		t.Fatalf("%d JSON lines, want %d", len(lines), len(lens))
	}
	for i, n := range lens {
		var ev struct {
			Args struct {
				S string `json:"s"`
				N int    `json:"n"`
			} `json:"args"`
			Truncated []string `json:"truncated"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &ev); err != nil {
			t.Fatalf("bad JSON %q: %v", lines[i][:80], err)
		}
		cut := n > 4095
		if ev.Args.S != alphabet(4095) || ev.Args.N != n || (len(ev.Truncated) == 1 && ev.Truncated[0] == "s") != cut || (!cut && ev.Truncated != nil) {
			t.Errorf("string of %d bytes: %d bytes, n=%d, truncated %q", n, len(ev.Args.S), ev.Args.N, ev.Truncated)
		}
	}
}
