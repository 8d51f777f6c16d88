package kernel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Run a program under kernel uprobes (as root) and count the calls of
// libc's malloc, with the size of each.
func ExampleBackend() {
	spec, err := uprobe.Parse("p:ex/malloc libc:malloc size=%di:u64")
	if err != nil {
		log.Fatal(err)
	}
	var total uint64
	res, err := kernel.Backend{}.Run(context.Background(), &backend.Request{
		Probes:  []backend.Probe{{Spec: spec}},
		Argv:    []string{"ls", "/"},
		OnEvent: func(ev *uprobe.Event) { total += ev.Args[0].U },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ls exited with %d after %d mallocs of %d bytes\n", res.Status(), res.Probes[0].Hits, total)
}

// A session of its own: define a kernel probe, enable it, read its
// events until the context is done, and remove it.
func ExampleSession() {
	s, err := kernel.NewSession(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	k, err := uprobe.ParseKprobe("p:ex/open do_sys_openat2 path=+0(%si):ustring")
	if err != nil {
		log.Fatal(err)
	}
	if err := s.AddKprobe(k); err != nil {
		log.Fatal(err)
	}
	if err := s.Enable(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err = s.Events(ctx, func(ev *uprobe.Event) error {
		fmt.Println(ev.Comm, "opens", ev.Args[0].S)
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}
