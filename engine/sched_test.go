package engine_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestTracerScheduling checks, from a pre handler (which runs on the
// ptrace thread), the tracer's policy and affinity under each setting,
// and that the program's affinity is left alone.
func TestTracerScheduling(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for _, tt := range []struct {
		name   string
		cfg    engine.Options
		policy []uint32 // allowed policies of the tracer
		cpus   int      // CPUs the tracer may run on
	}{
		{"normal", engine.Options{Sched: engine.SchedOptions{Priority: engine.PriorityNormal}}, []uint32{unix.SCHED_NORMAL}, 1},
		{"idle", engine.Options{Sched: engine.SchedOptions{Priority: engine.PriorityIdle}}, []uint32{unix.SCHED_IDLE}, 1},
		// auto: SCHED_IDLE while a CPU is free and the process may
		// leave it again, else SCHED_OTHER; which one depends on the
		// load of the machine when the test runs.
		{"auto", engine.Options{}, []uint32{unix.SCHED_IDLE, unix.SCHED_NORMAL}, 1},
		{"no-pin", engine.Options{Sched: engine.SchedOptions{NoFollow: true}}, []uint32{unix.SCHED_NORMAL}, all.Count()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var problems []string
			seen := 0
			check := func(ctx uprobe.Context) {
				mu.Lock()
				defer mu.Unlock()
				seen++
				if seen%50 != 1 {
					return
				}
				attr, err := unix.SchedGetAttr(0, 0)
				if err != nil {
					problems = append(problems, err.Error())
					return
				}
				var set unix.CPUSet
				unix.SchedGetaffinity(0, &set)
				var prog unix.CPUSet
				unix.SchedGetaffinity(ctx.TID(), &prog)
				ok := false
				for _, p := range tt.policy {
					ok = ok || attr.Policy == p
				}
				if unix.Gettid() == unix.Getpid() {
					problems = append(problems, "the tracer is the process's main thread, which Go never retires")
				}
				if !ok || set.Count() != tt.cpus || prog != all {
					problems = append(problems, fmt.Sprintf("hit %d: tracer policy %d on %d CPUs (want %v on %d), program on %d of %d CPUs",
						seen, attr.Policy, set.Count(), tt.policy, tt.cpus, prog.Count(), all.Count()))
				}
			}
			pcs := []backend.Probe{{Spec: mustParse(t, "p:t/push "+prog+":push_func"), Handlers: uprobe.Handlers{Pre: check}}}
			tr := launchTraced(t, tt.cfg, pcs, false, []string{prog, fmt.Sprint(n)})
			if got := tr.probe(t, "t/push").Hits(); got != n {
				t.Errorf("%d hits, want %d", got, n)
			}
			if len(problems) > 0 {
				t.Error(strings.Join(problems, "\n"))
			}
		})
	}
	// The ptrace threads were retired with their sessions: no thread of
	// the process is left at SCHED_IDLE or on fewer CPUs.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // exited meanwhile
		}
		var set unix.CPUSet
		unix.SchedGetaffinity(tid, &set)
		if attr.Policy != unix.SCHED_NORMAL || set != all {
			t.Errorf("thread %d after the sessions: policy %d on %d of %d CPUs", tid, attr.Policy, set.Count(), all.Count())
		}
	}
}
