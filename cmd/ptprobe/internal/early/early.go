// Package early catches ptprobe's terminating signals from the moment its
// packages are initialized: it imports nothing but os/signal, so that it
// is initialized before the big packages are (docs/DESIGN.md §4, "Early
// signals"). A signal that arrives before ptprobe's main watches its
// signals is kept for it instead of ending ptprobe by its default action.
package early

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals are the signals caught: SIGINT, SIGTERM, SIGHUP, SIGQUIT.
var Signals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// C receives the signals caught since initialization; it is the one
// channel registered for them, which the program takes over.
var C = make(chan os.Signal, 16)

func init() {
	signal.Notify(C, Signals...)
}
