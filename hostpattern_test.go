package securehttp

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"github.com/securehttp/securehttp/internal/pslgen"
)

// patternFields builds a Config holding pattern in each of the three fields
// that take host patterns, with the name each reports in a *ConfigError.
func patternFields(t *testing.T, pattern string) []struct {
	field string
	cfg   Config
} {
	p := sharedPKI(t)
	bearer, pins, allow := testConfig(t), testConfig(t), testConfig(t)
	bearer.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "t"}), Hosts: []string{pattern}}
	pins.Pins = []PinSet{{Host: pattern, Pins: []string{p.root.SPKIPin(), p.inter.SPKIPin()}}}
	allow.AllowHosts = []string{pattern}
	return []struct {
		field string
		cfg   Config
	}{{"Bearer.Hosts[0]", bearer}, {"Pins[0].Host", pins}, {"AllowHosts[0]", allow}}
}

// isPublicSuffixRule reports whether rule, a name or a "*." wildcard rule,
// is a public suffix by x/net's list.
func isPublicSuffixRule(rule string) bool {
	name := rule
	if rest, ok := strings.CutPrefix(rule, "*."); ok {
		name = "securehttp-probe." + rest
	}
	ps, _ := publicsuffix.PublicSuffix(name)
	return ps == name
}

// TestWildcardOverPublicSuffixRefused: a wildcard whose base is a public
// suffix, or has one below it (PSL private section included), covers names
// anyone can register; each of the three pattern fields refuses it, naming
// the suffix.
func TestWildcardOverPublicSuffixRefused(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{
		"**.amazonaws.com", "*.amazonaws.com", "**.windows.net", "**.core.windows.net",
		"*.com", "**.co.uk", "**.github.io", "**.compute.amazonaws.com",
	} {
		for _, f := range patternFields(t, pattern) {
			t.Run(pattern+" in "+f.field, func(t *testing.T) {
				t.Parallel()
				tr, err := newTransport(f.cfg)
				if err == nil {
					tr.CloseIdleConnections()
				}
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != f.field {
					t.Fatalf("got %v, want a *ConfigError for %s", err, f.field)
				}
				var we *wildcardError
				if !errors.As(err, &we) {
					t.Fatalf("got %v, want a *wildcardError inside", err)
				}
				base := strings.TrimLeft(pattern, "*.")
				if we.suffix != base && !strings.HasSuffix(we.suffix, "."+base) {
					t.Fatalf("got suffix %q, want %q or a name below it", we.suffix, base)
				}
				if !isPublicSuffixRule(we.suffix) {
					t.Fatalf("got suffix %q, want a public suffix", we.suffix)
				}
				if !strings.Contains(err.Error(), `"`+we.suffix+`"`) {
					t.Fatalf("got message %q, want it to name %q", err, we.suffix)
				}
			})
		}
	}
}

// TestWildcardBelowPublicSuffixAccepted: a wildcard over a registrable
// name with no public suffix below it, or over a special-use name that is
// never delegated (RFC 6761), is accepted in every field.
func TestWildcardBelowPublicSuffixAccepted(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{
		"**.example.com", "*.example.com", "**.mybucket.s3.amazonaws.com", "*.example.co.uk",
		"**.test", "*.localhost",
	} {
		for _, f := range patternFields(t, pattern) {
			t.Run(pattern+" in "+f.field, func(t *testing.T) {
				t.Parallel()
				tr, err := newTransport(f.cfg)
				if err != nil {
					t.Fatalf("got %v, want %s accepted", err, pattern)
				}
				tr.CloseIdleConnections()
			})
		}
	}
}

// TestWildcardMatchStopsAtPublicSuffix: at match time too, a host whose own
// public suffix lies below a wildcard's base is not covered, whatever the
// pattern says: this holds for a pattern that never went through
// parseHostPattern's checks.
func TestWildcardMatchStopsAtPublicSuffix(t *testing.T) {
	t.Parallel()
	raw := func(wild int, base string) hostPattern {
		return hostPattern{base: base, dot: "." + base, wild: wild}
	}
	for _, tt := range []struct {
		p    hostPattern
		host string
		want bool
	}{
		{raw(2, "amazonaws.com"), "attacker.s3.amazonaws.com", false},
		{raw(2, "amazonaws.com"), "s3.amazonaws.com", false},
		{raw(1, "amazonaws.com"), "s3.amazonaws.com", false},
		{raw(2, "windows.net"), "x.blob.core.windows.net", false},
		{raw(1, "compute.amazonaws.com"), "eu-west-1.compute.amazonaws.com", false},
		{raw(2, "amazonaws.com"), "amazonaws.com", true},
		{raw(2, "amazonaws.com"), "sts.amazonaws.com", true},
		{raw(2, "mybucket.s3.amazonaws.com"), "a.b.mybucket.s3.amazonaws.com", true},
		{raw(1, "example.com"), "api.example.com", true},
		{raw(2, "example.com"), "a.b.example.com", true},
		{raw(0, "s3.amazonaws.com"), "s3.amazonaws.com", true},
	} {
		if got := tt.p.match(tt.host); got != tt.want {
			t.Errorf("%v matching %q: got %v, want %v", tt.p, tt.host, got, tt.want)
		}
	}
}

// TestSuffixBelowTableCurrent: the committed table was generated from the
// public suffix list that x/net/publicsuffix, in the version go.mod
// requires, compiles in. After a change of x/net, run go generate.
func TestSuffixBelowTableCurrent(t *testing.T) {
	t.Parallel()
	if built := publicsuffix.List.String(); suffixBelowVersion != built {
		t.Fatalf("suffixbelow_table.go was made from %q, but x/net embeds %q: run go generate", suffixBelowVersion, built)
	}
	want, err := pslgen.Generate("", "securehttp")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("suffixbelow_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("suffixbelow_table.go differs from what %s writes: run go generate", pslgen.Generator)
	}
}

// TestSuffixBelowTableEntries checks each entry of the table against
// publicsuffix.PublicSuffix: the name is not a public suffix itself, and
// the rule named for it is one, below the name.
func TestSuffixBelowTableEntries(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.Trim(suffixBelow, "\n"), "\n")
	if len(lines) == 0 {
		t.Fatal("empty table")
	}
	for _, line := range lines {
		name, _, _ := strings.Cut(line, " ")
		if ps, _ := publicsuffix.PublicSuffix(name); ps == name {
			t.Errorf("%q is listed but is a public suffix itself", name)
		}
		suffix, more, ok := suffixUnder(name)
		if !ok || more < 0 || !strings.HasSuffix(suffix, "."+name) || !isPublicSuffixRule(suffix) {
			t.Errorf("entry %q: got suffix %q, %d more, %v; want a public suffix below %q", line, suffix, more, ok, name)
		}
	}
	// A name that is not listed is not found, even as part of a listed one.
	for _, name := range []string{"example.com", "s3.amazonaws", "zonaws.com", "mybucket.s3.amazonaws.com"} {
		if suffix, _, ok := suffixUnder(name); ok {
			t.Errorf("suffixUnder(%q): got %q, want none", name, suffix)
		}
	}
}
