package elfsym

import (
	"sort"
	"strings"
)

// maxSuggestions is how many "did you mean" names an error shows.
const maxSuggestions = 3

// suggestBound is the largest edit distance at which a name still counts
// as close to a query of n bytes: 2, or a third of the query for long
// ones. Farther names are more noise than help.
func suggestBound(n int) int { return max(2, n/3) }

// editDistance is the optimal string alignment distance between a and b
// (Levenshtein with transpositions of two adjacent bytes, the commonest
// typo), or bound+1 when it exceeds bound. The caller folds case.
//
// It keeps two rows plus the one before them, and gives up as soon as a
// whole row exceeds bound, so a far name costs a few rows, not len(a)*len(b).
func editDistance(a, b string, bound int) int {
	if d := len(a) - len(b); d > bound || -d > bound {
		return bound + 1
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
			rowMin = min(rowMin, d)
		}
		if rowMin > bound {
			return bound + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	if prev[len(b)] > bound {
		return bound + 1
	}
	return prev[len(b)]
}

// candidate is a name offered as a suggestion and how good it is: lower
// rank first, then preferred ones, then shorter, then alphabetical.
type candidate struct {
	name      string
	rank      int
	preferred bool
}

// rankCandidates sorts cands best first and drops duplicate names (the
// best entry of each is kept).
func rankCandidates(cands []candidate) []candidate {
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		switch {
		case a.rank != b.rank:
			return a.rank < b.rank
		case a.preferred != b.preferred:
			return a.preferred
		case len(a.name) != len(b.name):
			return len(a.name) < len(b.name)
		}
		return a.name < b.name
	})
	seen := make(map[string]bool, len(cands))
	out := cands[:0]
	for _, c := range cands {
		if !seen[c.name] {
			seen[c.name] = true
			out = append(out, c)
		}
	}
	return out
}

// didYouMean renders names as " (did you mean a, b?)", "" for none.
func didYouMean(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(names, ", ") + "?)"
}
