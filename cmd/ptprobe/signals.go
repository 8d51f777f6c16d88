package main

import (
	"os"
	"os/signal"
	"syscall"
)

// watchSignals calls on, from a goroutine of its own, with each of sigs
// ptprobe receives until stop is called; meanwhile their default action
// (ending ptprobe) is off. on decides: cancel a run's context, pass the
// signal on to the program, or nothing. ptprobe never exits from there:
// a run ends by its context, and its command returns the status.
func watchSignals(on func(syscall.Signal), sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			select {
			case sig := <-ch:
				on(sig.(syscall.Signal))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		<-ended
	}
}
