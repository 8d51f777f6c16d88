package tracefs

import (
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

// BenchmarkParseTraceLine is the cost of turning one trace_pipe line into
// an event, which bounds how many events per second a session keeps up
// with.
func BenchmarkParseTraceLine(b *testing.B) {
	line := "          probes-24540   (  24540) [000] DBZff  1705.569205: push: (0x55b72d4aa250) a=123456 b=246912 s=\"some string\""
	var ev uprobe.Event
	for b.Loop() {
		if err := parseTraceLine(line, testLookup, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
