package uprobe

// Parse parses one probe spec (see Spec). Errors are *Error with the
// position of the problem. Defaults: group DefaultGroup; event name the
// symbol (sanitized to [A-Za-z0-9_], "+OFFS" appended as "_OFFS"; return
// probes get "__return"), else the kernel's "p_<basename>_0x<offset>"
// (basename cut at its first '.', '-' or '_'); fetch-arg names "argN";
// fetch type DefaultType, String for $comm.
func Parse(text string) (*Spec, error) { panic("not implemented") }

// String renders the spec canonically in the kernel's grammar (symbol
// targets kept as symbols).
func (s *Spec) String() string { panic("not implemented") }

// FetchContext is what evaluating a fetch-arg needs of a stopped thread.
type FetchContext interface {
	Regs() *Regs
	ReadMemory(addr uint64, p []byte) (int, error)
	Comm() string
	FileBase() uint64
}

// Fetch evaluates the argument on a stopped thread. A failed memory read
// gives a Value with Fault set; Fetch never fails otherwise.
func (a *FetchArg) Fetch(ctx FetchContext) Value { panic("not implemented") }

// AppendText appends the value as trace_pipe prints it: "name=value".
func (v Value) AppendText(b []byte) []byte { panic("not implemented") }

// AppendText appends the event as one trace_pipe line with its newline:
//
//	comm-tid     [cpu] secs.usecs: event: (0xip) name=value ...
//
// return probes show "(0xfunc <- 0xretip)".
func (e *Event) AppendText(b []byte) []byte { panic("not implemented") }

// AppendJSON appends the event as one JSON object with its newline:
// {"time_ns":..,"pid":..,"tid":..,"comm":..,"probe":"GROUP/EVENT","ip":"0x..","args":{"name":value,...}}
// with integer args as numbers (hex types as "0x.." strings) and strings
// as JSON strings; faulted args as null.
func (e *Event) AppendJSON(b []byte) []byte { panic("not implemented") }
