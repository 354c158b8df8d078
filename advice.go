package securehttp

import (
	"sync"
)

// Telling a mistake in configuration to someone: a host that pins or
// Bearer.Hosts were probably meant to cover, said once per host, with the
// entry it most resembles.

// maxAdvised bounds the hosts each warning is remembered for.
const maxAdvised = 256

// once remembers which hosts a warning was given for.
type once struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// first reports whether host is seen here for the first time, remembering
// at most maxAdvised hosts: past that, nothing more is said.
func (o *once) first(host string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[host]; ok || len(o.seen) >= maxAdvised {
		return false
	}
	if o.seen == nil {
		o.seen = make(map[string]struct{})
	}
	o.seen[host] = struct{}{}
	return true
}

// closest returns the entry of candidates that name most resembles, when
// one is within a few edits of it (a typo, another address of the same
// network), or "".
func closest(name string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(name, c)
		if d <= max(2, len(c)/4) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes. Host names
// and patterns are short: at most a few hundred bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
