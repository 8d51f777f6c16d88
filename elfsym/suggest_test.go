package elfsym

import "testing"

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		bound int
		want  int
	}{
		{"", "", 2, 0},
		{"malloc", "malloc", 2, 0},
		{"mallocc", "malloc", 2, 1},
		{"mlaloc", "malloc", 2, 1}, // a transposition is one edit
		{"libcc", "libc", 2, 1},
		{"libc", "libm", 2, 1},
		{"kitten", "sitting", 3, 3},
		{"kitten", "sitting", 2, 3}, // beyond the bound: bound+1
		{"abc", "", 5, 3},
		{"", "abcdef", 2, 3},
		{"ca", "abc", 3, 3}, // optimal string alignment, not full Damerau
	} {
		if got := editDistance(tc.a, tc.b, tc.bound); got != tc.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.bound, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a, tc.bound); got != tc.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tc.b, tc.a, tc.bound, got, tc.want)
		}
	}
}
