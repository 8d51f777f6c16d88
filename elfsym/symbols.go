package elfsym

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// loadSymbols reads .symtab and .dynsym and builds the lookup structures.
// A missing table is not an error (stripped files have no .symtab, static
// ones no .dynsym); a malformed one is.
func (f *File) loadSymbols() error {
	st, err := f.ef.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("elfsym: %s: reading .symtab: %w", f.Path, err)
	}
	dt, err := f.ef.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("elfsym: %s: reading .dynsym: %w", f.Path, err)
	}
	f.symtab, f.symtabByName = f.codeSymbols(st, false)
	f.dynsym, f.dynsymByName = f.codeSymbols(dt, true)
	f.merge()
	return nil
}

// codeSymbols keeps the defined function symbols (STT_FUNC, STT_GNU_IFUNC)
// with a nonzero address inside the file bytes of a PT_LOAD segment: only
// those can be probed.
func (f *File) codeSymbols(in []elf.Symbol, dynamic bool) ([]sym, map[string][]int) {
	var out []sym
	byName := map[string][]int{}
	for _, s := range in {
		t := elf.ST_TYPE(s.Info)
		if t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC {
			continue
		}
		if s.Section == elf.SHN_UNDEF || s.Value == 0 {
			continue
		}
		// .symtab spells versioned definitions "name@V" / "name@@V".
		name, ver, hidden := splitVersion(s.Name)
		if name == "" {
			continue
		}
		if dynamic && s.HasVersion && ver == "" {
			// Lookup reads "name@@V" (and "name@@@V") as version V,
			// as splitVersion reads .symtab: a version of the version
			// table that starts with '@' (only a crafted file has one)
			// is read the same way, or Symbols would list a
			// "name@version" that Lookup cannot find.
			ver, hidden = strings.TrimLeft(s.Version, "@"), s.VersionIndex.IsHidden()
		}
		if ver == "" {
			hidden = false
		}
		off, ok := f.offsetIn(s.Value, true)
		if !ok {
			if off, ok = f.offsetIn(s.Value, false); !ok {
				continue
			}
		}
		byName[name] = append(byName[name], len(out))
		out = append(out, sym{
			Symbol: Symbol{
				Name: name, Version: ver,
				Value: s.Value, Size: s.Size, Offset: off,
				Type: t, Dynamic: dynamic,
			},
			bind:   elf.ST_BIND(s.Info),
			hidden: hidden,
		})
	}
	return out, byName
}

// symKey identifies a function for deduplication: one name at one address.
type symKey struct {
	name  string
	value uint64
}

// splitVersion splits "name@V" (hidden, a non-default version) and
// "name@@V" (the default version).
func splitVersion(s string) (name, ver string, hidden bool) {
	i := strings.IndexByte(s, '@')
	if i < 0 {
		return s, "", false
	}
	name, ver = s[:i], s[i+1:]
	if strings.HasPrefix(ver, "@") {
		return name, strings.TrimLeft(ver, "@"), false
	}
	return name, ver, ver != ""
}

// merge builds the list of Symbols: .symtab then .dynsym, deduplicated by
// (name, value), sorted by address.
func (f *File) merge() {
	idx := map[symKey]int{}
	f.names = map[string]struct{}{}
	for _, s := range append(append([]sym(nil), f.symtab...), f.dynsym...) {
		f.names[s.Name] = struct{}{}
		k := symKey{s.Name, s.Value}
		i, dup := idx[k]
		if !dup {
			idx[k] = len(f.merged)
			f.merged = append(f.merged, s)
			continue
		}
		m := &f.merged[i]
		if m.Size == 0 {
			m.Size = s.Size
		}
		if bindRank(s.bind) < bindRank(m.bind) {
			m.bind = s.bind
		}
		switch {
		case s.Dynamic && !m.Dynamic:
			// The .symtab entry stays, with the export's version.
			m.Dynamic = true
			if s.Version != "" {
				m.Version, m.hidden = s.Version, s.hidden
			}
		case s.Version != "" && (m.Version == "" || m.hidden && !s.hidden):
			// Keep the default version of one function.
			m.Version, m.hidden = s.Version, s.hidden
		}
	}
	sort.SliceStable(f.merged, func(i, j int) bool {
		a, b := f.merged[i], f.merged[j]
		if a.Value != b.Value {
			return a.Value < b.Value
		}
		return a.Name < b.Name
	})
	f.symbols = make([]Symbol, len(f.merged))
	f.mergedByKey = make(map[symKey]int, len(f.merged))
	var maxEnd uint64
	for i, s := range f.merged {
		f.symbols[i] = s.Symbol
		f.mergedByKey[symKey{s.Name, s.Value}] = i
		if s.Size > 0 {
			maxEnd = max(maxEnd, addSat(s.Value, s.Size))
			f.sized = append(f.sized, i)
			f.sizedMaxEnd = append(f.sizedMaxEnd, maxEnd)
		}
	}
}
