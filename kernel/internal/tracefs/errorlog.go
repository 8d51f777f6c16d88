package tracefs

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// KernelError is a definition the kernel refused: the line written, the
// write's error and, when error_log has it, the kernel's explanation with
// the position of the problem in the line. Package kernel exports it as
// kernel.KernelError.
type KernelError struct {
	File string // the file written, "uprobe_events"
	Line string // the line written, without its newline
	Err  error  // the write's error (EINVAL, ENOENT, EBUSY...)
	// Msg is the kernel's message from error_log ("Invalid register
	// name"), "" when error_log has no entry for Line.
	Msg string
	// Pos is the byte position in Line of the caret of error_log, -1
	// when unknown.
	Pos int
	// Log is the error_log entry as the kernel wrote it, without its
	// timestamp: "trace_uprobe: error: MSG", "  Command: LINE" and the
	// caret line; "" when there is none.
	Log string
}

func (e *KernelError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("kernel refused %q in %s: %v", e.Line, e.File, e.Err)
	}
	return fmt.Sprintf("kernel refused %q in %s: %s at position %d (%v)", e.Line, e.File, e.Msg, e.Pos, e.Err)
}

func (e *KernelError) Unwrap() error { return e.Err }

// Caret is the kernel's error_log entry: the message, the command and a
// caret under the problem. Without one it is the write error and the line.
func (e *KernelError) Caret() string {
	if e.Log == "" {
		return fmt.Sprintf("error: %v\n  Command: %s", e.Err, e.Line)
	}
	return e.Log
}

// errorLogEntry is one entry of error_log:
//
//	[ 1701.441427] trace_uprobe: error: Invalid register name
//	  Command: p:g/e /bin/ls:0x1 c=%fs_base
//	                                ^
type errorLogEntry struct {
	head    string // "trace_uprobe: error: Invalid register name"
	msg     string // "Invalid register name"
	command string
	caret   string // the caret line as written
	pos     int    // caret position in command, -1 if none
}

const commandPrefix = "  Command: "

// parseErrorLog splits the text of error_log into its entries, oldest
// first.
func parseErrorLog(text string) []errorLogEntry {
	var entries []errorLogEntry
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "[") {
			continue
		}
		e := errorLogEntry{pos: -1}
		if j := strings.Index(l, "] "); j >= 0 {
			e.head = l[j+2:]
		} else {
			e.head = l
		}
		if j := strings.Index(e.head, "error: "); j >= 0 {
			e.msg = e.head[j+len("error: "):]
		} else {
			e.msg = e.head
		}
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], commandPrefix) {
			i++
			e.command = lines[i][len(commandPrefix):]
			if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == "^" {
				i++
				e.caret = lines[i]
				e.pos = strings.IndexByte(e.caret, '^') - len(commandPrefix)
			}
		}
		entries = append(entries, e)
	}
	return entries
}

// Refused builds the error of a refused write of line to file, looking
// up the newest error_log entry for line. error_log is shared by every
// writer of every *_events file, so the entry is matched by its command,
// never taken as the last one.
func (t *Tracefs) Refused(file, line string, werr error) *KernelError {
	ke := &KernelError{File: file, Line: line, Err: werr, Pos: -1}
	var pe *os.PathError
	if errors.As(werr, &pe) {
		ke.Err = pe.Err
	}
	data, err := os.ReadFile(t.Path("error_log"))
	if err != nil {
		return ke
	}
	entries := parseErrorLog(string(data))
	// The kernel logs the command as its words joined by single spaces.
	want := strings.Join(strings.Fields(line), " ")
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.command != want {
			continue
		}
		ke.Msg, ke.Pos = e.msg, e.pos
		ke.Log = e.head + "\n" + commandPrefix + e.command
		if e.caret != "" {
			ke.Log += "\n" + e.caret
		}
		break
	}
	return ke
}
