package script

import (
	"os"

	"github.com/ptprobe/ptprobe/backend"
)

func engineProcess(out *os.File) backend.Process { return backend.Process{Stdout: out} }
