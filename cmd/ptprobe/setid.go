package main

import (
	"github.com/ptprobe/ptprobe/internal/privs"
)

// setIDWarning returns a warning for a program that is set-user-ID,
// set-group-ID or has file capabilities, and would lose them when
// launched under ptprobe (package privs says when), else "".
func setIDWarning(path string) string {
	if privs.TracerCapable() {
		return ""
	}
	return privs.Lost(path, privs.Self())
}
