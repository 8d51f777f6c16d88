package tracefs

import "strings"

// Features is what a kernel's tracing supports, as its README documents
// it (ParseFeatures) and, after Open, as the files present confirm.
type Features struct {
	UprobeEvents  bool // uprobe_events: user-space probes can be defined
	KprobeEvents  bool // kprobe_events: kernel probes can be defined
	DynamicEvents bool // dynamic_events, the generic interface
	ErrorLog      bool // error_log explains refused definitions (set by OpenAt)
	Instances     bool // instances/ exists (set by OpenAt)

	// UprobeReturnSuffix: "PATH:OFFSET%return" is understood (the "r"
	// command works on every kernel).
	UprobeReturnSuffix bool
	// KprobeReturnSuffix: "KSYM%return" is understood.
	KprobeReturnSuffix bool
	// MaxActive: "r[MAXACTIVE]" is understood.
	MaxActive bool
	// RefCtrOffset: uprobe places take "(REF_CTR_OFFSET)" (SDT semaphores).
	RefCtrOffset bool

	// FetchArgs are the fetch-arg forms the README lists, as written
	// ("%<register>", "$stack<index>", "$arg<N>", "+|-[u]<offset>(<fetcharg>)").
	FetchArgs []string
	// ArgN: "$argN" is understood. Kernels accept it only where the
	// function's arguments are known (kprobes and fprobes at a function
	// entry), never in uprobe_events: the kernel backend renders a
	// uprobe's $argN as its SysV register.
	ArgN bool
	// Comm: "$comm" is understood.
	Comm bool
	// UserDeref: "+u<offset>(...)" (a user-memory dereference from a
	// kprobe) is understood.
	UserDeref bool
	// Immediates: "\imm" and "\"string\"" fetch-args are understood.
	Immediates bool

	// Types are the fetch types the README lists, expanded ("s8", "s16",
	// ..., "x64", "string", "ustring", "symbol", ...; forms with
	// placeholders as written: "b<bit-width>@<bit-offset>/<container-size>").
	Types []string
}

// HasType reports whether the README lists the fetch type name.
func (f *Features) HasType(name string) bool {
	for _, t := range f.Types {
		if t == name {
			return true
		}
	}
	return false
}

// ParseFeatures reads the features from the text of a tracefs README.
// Unknown text is ignored, so READMEs of kernels older or newer than the
// ones seen parse to what they document that this package knows about.
func ParseFeatures(readme string) Features {
	var f Features
	lines := strings.Split(readme, "\n")
	for _, l := range lines {
		w := strings.Fields(l)
		if len(w) < 2 || w[1] != "-" {
			continue
		}
		switch w[0] {
		case "uprobe_events":
			f.UprobeEvents = true
		case "kprobe_events":
			f.KprobeEvents = true
		case "dynamic_events":
			f.DynamicEvents = true
		}
	}

	// The probe grammar is documented as "key: value" lines with
	// indented continuation lines, from "accepts: event-definitions" to
	// the "events/" section.
	start := -1
	for i, l := range lines {
		if strings.Contains(l, "accepts: event-definitions") {
			start = i
			break
		}
	}
	if start < 0 {
		return f
	}
	sections := map[string][]string{}
	var keys []string // in order, for the places (several "place" keys)
	key := ""
	for _, l := range lines[start:] {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "events/") {
			break
		}
		if k, v, ok := readmeKey(t); ok {
			key = k
			keys = append(keys, k)
			sections[k] = append(sections[k], v)
			continue
		}
		if key != "" {
			sections[key] = append(sections[key], t)
		}
	}

	for _, v := range sections["Format"] {
		if strings.Contains(v, "r[maxactive]") {
			f.MaxActive = true
		}
	}
	for _, k := range keys {
		for _, v := range sections[k] {
			isPlace := strings.HasPrefix(k, "place")
			switch {
			case isPlace && strings.Contains(v, "<path>"):
				f.UprobeReturnSuffix = f.UprobeReturnSuffix || strings.Contains(v, "%return")
				f.RefCtrOffset = f.RefCtrOffset || strings.Contains(v, "ref_ctr_offset")
			case k == "place (kretprobe)":
				f.KprobeReturnSuffix = f.KprobeReturnSuffix || strings.Contains(v, "%return")
			}
		}
	}

	for _, item := range splitList(sections["fetcharg"]) {
		f.FetchArgs = append(f.FetchArgs, item)
		switch {
		case item == "$arg<N>":
			f.ArgN = true
		case item == "$comm":
			f.Comm = true
		case strings.Contains(item, "[u]<offset>"):
			f.UserDeref = true
		case strings.HasPrefix(item, `\imm`):
			f.Immediates = true
		}
	}
	for _, item := range splitList(sections["type"]) {
		f.Types = append(f.Types, expandTypes(item)...)
	}
	return f
}

// readmeKey splits a README grammar line "key: value". Keys are words
// and spaces, optionally with a parenthesized qualifier ("place
// (kretprobe)"); continuation lines ("$stack<index>, ...",
// "r[maxactive][:...") do not match.
func readmeKey(t string) (key, value string, ok bool) {
	i := strings.Index(t, ": ")
	if i <= 0 {
		if strings.HasSuffix(t, ":") {
			i = len(t) - 1
		} else {
			return "", "", false
		}
	}
	k := t[:i]
	for j := 0; j < len(k); j++ {
		c := k[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == ' ' || c == '(' || c == ')' || c == '_') {
			return "", "", false
		}
	}
	if k[0] == ' ' || k[0] == '(' {
		return "", "", false
	}
	return k, strings.TrimSpace(t[min(i+2, len(t)):]), true
}

// splitList splits the comma-separated items of a README list spread over
// lines.
func splitList(lines []string) []string {
	var items []string
	for _, l := range lines {
		for _, it := range strings.Split(l, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
	}
	return items
}

// expandTypes expands the README's shorthand "s8/16/32/64" into s8, s16,
// s32, s64 and "%pd/%pD" into both; items with placeholders ('<') are
// kept whole.
func expandTypes(item string) []string {
	if strings.Contains(item, "<") || !strings.Contains(item, "/") {
		return []string{item}
	}
	parts := strings.Split(item, "/")
	first := parts[0]
	prefix := strings.TrimRight(first, "0123456789")
	out := []string{first}
	for _, p := range parts[1:] {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			out = append(out, prefix+p)
		} else {
			out = append(out, p)
		}
	}
	return out
}
