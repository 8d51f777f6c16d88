package elfsym

import "github.com/ianlancetaylor/demangle"

// Demangle returns the demangled form of a C++ (Itanium ABI) or Rust
// symbol name, full ("ns::Foo::bar(int)") and without its parameters
// ("ns::Foo::bar"); a name that is not mangled comes back as it is, twice.
// The demangler is github.com/ianlancetaylor/demangle, the one Go's own
// tools use (docs/DESIGN.md §9).
func Demangle(name string) (full, short string) {
	if len(name) < 2 || name[0] != '_' || (name[1] != 'Z' && name[1] != 'R') {
		return name, name
	}
	return demangle.Filter(name), demangle.Filter(name, demangle.NoParams)
}
