package tracefs

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestInstance: the instances of one process get distinct session names,
// take their settings and pid filter, count no lost events, and are
// removed (twice is no error).
func TestInstance(t *testing.T) {
	tfs := requireTracefs(t)
	pid := os.Getpid()
	a, err := tfs.NewInstance(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Remove(); checkNoLeftovers(t, tfs, a.Name) })
	b, err := tfs.NewInstance(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Remove(); checkNoLeftovers(t, tfs, b.Name) })
	own := SessionPrefix + strconv.Itoa(pid)
	if a.Name == b.Name || !strings.HasPrefix(a.Name, own) || !strings.HasPrefix(b.Name, own+"_") {
		t.Errorf("instances %q and %q", a.Name, b.Name)
	}
	if p, ok := sessionPID(b.Name); !ok || p != pid {
		t.Errorf("sessionPID(%q) = %d, %v", b.Name, p, ok)
	}
	if err := a.SetPIDs(false, []int{pid, 1}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(a.Path("set_event_pid"))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(got)); len(f) != 2 {
		t.Errorf("set_event_pid holds %q, want %d and 1", got, pid)
	}
	if fork, _ := os.ReadFile(a.Path("options", "event-fork")); strings.TrimSpace(string(fork)) != "0" {
		t.Errorf("event-fork %q after SetPIDs(false, ...)", fork)
	}
	if err := a.Set("buffer_size_kb", "nonsense"); err == nil {
		t.Error("Set of a bad buffer size succeeded")
	}
	if n, err := a.Lost(); err != nil || n != 0 {
		t.Errorf("Lost = %d, %v", n, err)
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}
