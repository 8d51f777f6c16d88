package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/ptprobe/ptprobe/cmd/ptprobe/internal/early"
)

// signalCatcher serves ptprobe's signals (early.Signals: SIGINT, SIGTERM
// and SIGHUP end a run or are passed on, SIGQUIT is ignored), caught from
// the initialization of package early, before anything is launched or
// attached to, so that none arrives while their default action (ending
// ptprobe) is still on (docs/DESIGN.md §4, "Early signals"): one that comes before a
// run watches them is kept for it (early), and the run decides what it
// means (traceOptions.run: the program is then not started).
type signalCatcher struct {
	mu    sync.Mutex
	on    func(syscall.Signal) // nil: no run watches
	early []syscall.Signal
	// ch receives the signals; released: they have their default
	// action back (releaseSignals), until a run watches them again.
	ch       chan os.Signal
	released bool
}

// catchSignals starts serving the signals of ch, where early.Signals are
// delivered (nil: a channel of its own, registered now).
func catchSignals(ch chan os.Signal) *signalCatcher {
	if ch == nil {
		ch = make(chan os.Signal, 16)
		signal.Notify(ch, early.Signals...)
	}
	c := &signalCatcher{ch: ch}
	go func() {
		for sig := range ch {
			c.mu.Lock()
			if c.on != nil {
				c.on(sig.(syscall.Signal))
			} else {
				c.early = append(c.early, sig.(syscall.Signal))
			}
			c.mu.Unlock()
		}
	}()
	return c
}

type signalCatcherKey struct{}

// withSignals returns ctx carrying c, for the commands run starts.
func withSignals(ctx context.Context, c *signalCatcher) context.Context {
	return context.WithValue(ctx, signalCatcherKey{}, c)
}

// watchSignals calls on with each signal of early.Signals ptprobe
// receives until stop is called, first with those that came before (the
// early ones the catcher of ctx kept, or none if ctx has no catcher: one
// is started then). Calls are serialized; on decides: cancel a run's
// context, pass the signal on to the program, or nothing. ptprobe never
// exits from there: a run ends by its context, and its command returns
// the status.
func watchSignals(ctx context.Context, on func(syscall.Signal)) (stop func()) {
	c, _ := ctx.Value(signalCatcherKey{}).(*signalCatcher)
	if c == nil {
		c = catchSignals(nil)
	}
	c.mu.Lock()
	if c.released {
		signal.Notify(c.ch, early.Signals...)
		c.released = false
	}
	for _, sig := range c.early {
		on(sig)
	}
	c.early = nil
	c.on = on
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.on = nil
		c.mu.Unlock()
		// The run is over (the program ended or was let go): a signal
		// now ends ptprobe, as its default action does, instead of
		// waiting in c.early for a run that will not come (a ptprobe
		// stuck writing to a stalled pipe must stay killable).
		releaseSignals(withSignals(context.Background(), c))
	}
}

// releaseSignals gives the signals back their default action, for a
// command that starts no program (list, man, help): a signal already
// caught is raised again, and ends ptprobe as it would have.
func releaseSignals(ctx context.Context) {
	c, _ := ctx.Value(signalCatcherKey{}).(*signalCatcher)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	signal.Reset(early.Signals...)
	c.released = true
	for _, sig := range c.early {
		syscall.Kill(os.Getpid(), sig)
	}
	c.early = nil
}
