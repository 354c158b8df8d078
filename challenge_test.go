package securehttp

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// findChallengeHeader builds a WWW-Authenticate value of about size bytes:
// a Basic challenge with many parameters, then a Bearer challenge.
func findChallengeHeader(size int) string {
	var b strings.Builder
	b.WriteString(`Basic realm="x"`)
	for b.Len() < size {
		b.WriteString(`, a=b`)
	}
	b.WriteString(`, Bearer error="invalid_token"`)
	return b.String()
}

// TestChallengeParseCapped: a 401's WWW-Authenticate header is read only up
// to maxChallengeBytes, across header lines, without allocating, so that a
// huge header costs no more than a small one; a challenge within the cap is
// still found. Not parallel: testing.AllocsPerRun refuses parallel tests.
func TestChallengeParseCapped(t *testing.T) {
	for _, size := range []int{400 << 10, 10 << 20} {
		// A parser that fails at 400 KiB would take an hour at 10 MiB.
		ok := t.Run(fmt.Sprintf("%d KiB", size>>10), func(t *testing.T) {
			h := http.Header{}
			h.Set("Www-Authenticate", findChallengeHeader(size))
			// The Bearer challenge lies beyond the bytes examined: it is
			// not seen, however large the header.
			if _, _, ok := findChallenge(h, "Bearer"); ok {
				t.Fatalf("found a Bearer challenge %d bytes in, want the header read only to %d bytes", size, maxChallengeBytes)
			}
			if tokenRejected(h) {
				t.Fatalf("tokenRejected: got true, want false (the challenge is past the %d bytes read)", maxChallengeBytes)
			}
			// Parsing makes no copies: the quadratic parser built each
			// challenge by concatenating its parameters.
			if n := testing.AllocsPerRun(3, func() { tokenRejected(h) }); n != 0 {
				t.Fatalf("tokenRejected allocated %v times, want 0", n)
			}

			// A Bearer challenge first is found at once: parsing stops at it.
			first := http.Header{}
			first.Set("Www-Authenticate", `Bearer error="insufficient_scope", `+findChallengeHeader(size))
			scheme, params, ok := findChallenge(first, "DPoP", "Bearer")
			if !ok || scheme != "Bearer" || params.Get("error") != "insufficient_scope" {
				t.Fatalf("got %q, %q, %v, want Bearer with error insufficient_scope", scheme, params.Get("error"), ok)
			}
		})
		if !ok {
			return
		}
	}
	t.Run("cap spans header lines", func(t *testing.T) {
		t.Parallel()
		h := http.Header{}
		h.Add("Www-Authenticate", findChallengeHeader(maxChallengeBytes))
		h.Add("Www-Authenticate", `Bearer error="invalid_token"`)
		if _, _, ok := findChallenge(h, "Bearer"); ok {
			t.Fatal("found a Bearer challenge on a line after the cap, want none")
		}
		small := http.Header{}
		small.Add("Www-Authenticate", `Basic realm="x"`)
		small.Add("Www-Authenticate", `DPoP algs="ES256", error="use_dpop_nonce"`)
		scheme, params, ok := findChallenge(small, "DPoP")
		if !ok || scheme != "DPoP" || params.Get("algs") != "ES256" || params.Get("error") != "use_dpop_nonce" {
			t.Fatalf("got %q %q %q %v, want the DPoP challenge with its parameters", scheme, params.Get("algs"), params.Get("error"), ok)
		}
	})
}

// BenchmarkChallengeParse reports the cost of reading a 401's
// WWW-Authenticate header of each size: it stays flat, since at most
// maxChallengeBytes are read.
func BenchmarkChallengeParse(b *testing.B) {
	for _, size := range []int{1 << 10, 400 << 10, 10 << 20} {
		h := http.Header{}
		h.Set("Www-Authenticate", findChallengeHeader(size))
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tokenRejected(h)
			}
		})
	}
}

// fzChallenges lists single WWW-Authenticate lines among FuzzAuthParam's
// seeds, with what tokenRejected must answer. A field value may hold several
// comma-separated challenges (RFC 9110 section 11.6.1), and an intermediary
// may join separate lines into one.
var fzChallenges = []struct {
	header   string
	rejected bool
}{
	{`Bearer`, true},
	{`Bearer error="invalid_token"`, true},
	{`Bearer realm="api", error="insufficient_scope", error_description="needs \"admin\", sorry"`, false},
	{`bearer ERROR=invalid_token`, true},
	{`Basic realm="x"`, false},
	{`Basic realm="x", Bearer error="invalid_request"`, false},
	{`Basic realm="x", Bearer error="invalid_token"`, true},
	{`Basic realm="x", Bearer`, true},
	{`Bearer error="invalid_token", Basic realm="x"`, true},
	{`Bearer realm="x", Basic realm="y"`, true},
	{`Bearer realm="x", Basic, error="invalid_request"`, true}, // the error is Basic's
	{`DPoP error="use_dpop_nonce"`, false},
}

// FuzzAuthParam: tokenRejected gives the known verdict on the seeds of
// fzChallenges and rejects a token only on a Bearer challenge, and cutParam
// and authParam return only parts of their input.
func FuzzAuthParam(f *testing.F) {
	want := make(map[string]bool, len(fzChallenges))
	for _, c := range fzChallenges {
		f.Add(c.header, "error")
		want[c.header] = c.rejected
	}
	for _, s := range [][2]string{
		{`Bearer`, "error"},
		{`Bearer error="invalid_token"`, "error"},
		{`Bearer realm="api", error="insufficient_scope", error_description="needs \"admin\", sorry"`, "error"},
		{`bearer ERROR=invalid_token`, "error"},
		{`Bearer error="invalid_token`, "error"},
		{`Bearer error=""`, "error"},
		{`Bearer ,,,error=,`, "error"},
		{`Bearer a="\`, "a"},
		{`Bearer a="\\",error=invalid_request`, "error"},
		{`Basic realm="x", Bearer error="invalid_request"`, "error"},
		{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`, "title"},
		{`Bearer` + "\t" + `error="invalid_request"`, "error"},
		{`  Bearer   error = "invalid_token"  `, "error"},
		{`DPoP error="use_dpop_nonce"`, "error"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, name string) {
		h := http.Header{}
		h.Add("Www-Authenticate", header)
		if w, ok := want[header]; ok && tokenRejected(h) != w {
			t.Errorf("tokenRejected(%q) = %v, want %v", header, !w, w)
		}
		if tokenRejected(h) && !strings.Contains(strings.ToLower(header), "bearer") {
			t.Errorf("tokenRejected(%q) = true for a challenge that is not Bearer", header)
		}
		first, rest := cutParam(header)
		if !(first == header && rest == "") && first+","+rest != header {
			t.Errorf("cutParam(%q) = %q, %q, which do not make up the input", header, first, rest)
		}
		if v := authParam(header, name); !strings.Contains(header, v) {
			t.Errorf("authParam(%q, %q) = %q, not part of the input", header, name, v)
		}
	})
}
