package securehttp

import (
	"bytes"
	"errors"
	"fmt"
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

func TestHostPatterns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pattern, host string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.Example.COM.", true},
		{"API.EXAMPLE.COM.", "api.example.com", true},
		{"api.example.com", "x.api.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", "example.com", false},
		{"*.example.com", "aexample.com", false},
		{"**.example.com", "example.com", true},
		{"**.example.com", "a.b.example.com", true},
		{"**.example.com", "badexample.com", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "[::1]", true},
		{"bücher.example", "xn--bcher-kva.example", true},
	} {
		p, err := parseHostPattern(tt.pattern)
		if err != nil {
			t.Fatalf("parseHostPattern(%q): %v", tt.pattern, err)
		}
		host, err := normalizeHost(tt.host)
		if err != nil {
			t.Fatalf("normalizeHost(%q): %v", tt.host, err)
		}
		if got := p.match(host); got != tt.want {
			t.Fatalf("%q matches %q: got %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

// TestHostPatternsStrict: a host pattern is read strictly: empty labels,
// characters outside host names, wildcards anywhere but in front of a name,
// IP address wildcards, numeric top-level labels and over-long names are
// refused with a *ConfigError by every field that takes a pattern, and
// accepted patterns come out normalised.
func TestHostPatternsStrict(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	name253 := label63 + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	for _, tt := range []struct {
		pattern string
		want    string // the normalised pattern; "" for a *ConfigError
	}{
		{".api.test", ""},
		{"api.test\n", ""},
		{"api.test\t", ""},
		{"api.test..", ""},
		{"api..test", ""},
		{"..", ""},
		{".", ""},
		{"api test", ""},
		{"api_test.example", ""},
		{"-api.test", ""},
		{"api-.test", ""},
		{"api.test/", ""},
		{"api%2etest", ""},
		{"*.0.0.1", ""},
		{"**.0.1", ""},
		{"*.127.0.0.1", ""},
		{"**.[::1]", ""},
		{"*.*.api.test", ""},
		{"0.0.1", ""},
		{"api.0x7f", ""},
		{"[127.0.0.1]", ""},
		{strings.Repeat("a", 64) + ".test", ""},
		{name253 + "d", ""},
		{"xn--a.test", ""}, // invalid Punycode
		{"api.test", "api.test"},
		{"API.Test.", "api.test"},
		{"*.api.test", "*.api.test"},
		{"**.api.test", "**.api.test"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
		{"1.api.test", "1.api.test"},
		{"a-b.test", "a-b.test"},
		{label63 + ".test", label63 + ".test"},
		{name253, name253},
		{name253 + ".", name253},
	} {
		t.Run(fmt.Sprintf("%q", tt.pattern), func(t *testing.T) {
			t.Parallel()
			p, err := parseHostPattern(tt.pattern)
			if tt.want != "" {
				if err != nil || p.String() != tt.want {
					t.Fatalf("got %q and error %v, want %q", p.String(), err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got pattern %q, want an error", p.String())
			}
			// Every place that takes a host pattern refuses it.
			good := "sha256/" + strings.Repeat("A", 43) + "="
			for _, c := range []struct {
				field string
				cfg   Config
			}{
				{"Pins[0].Host", Config{Pins: []PinSet{{Host: tt.pattern, Pins: []string{good}}}}},
				{"Bearer.Hosts[0]", Config{Bearer: &Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{tt.pattern}}}},
			} {
				tr, err := newTransport(c.cfg)
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != c.field || tr != nil {
					t.Fatalf("got %v and error %v, want only a *ConfigError for %s", tr, err, c.field)
				}
			}
		})
	}
}

// FuzzHostPattern: host names and patterns normalise the same whatever their
// ASCII case, and a pattern matches its own name, one label below it or any
// depth below it as its wildcard says, and never a name that merely ends
// with it.
func FuzzHostPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"api.example.com", "api.example.com"},
		{"API.Example.COM.", "api.example.com"},
		{"*.example.com", "example.com"},
		{"*.example.com", "a.example.com"},
		{"*.example.com", "a.b.example.com"},
		{"*.example.com", ".example.com"},
		{"**.example.com", "example.com"},
		{"**.example.com", "a.b.example.com"},
		{"**.example.com", "xexample.com"},
		{"*.", "a"},
		{"**.", "a"},
		{"*", "a"},
		{"a.*.com", "a.b.com"},
		{"*.*.example.com", "a.b.example.com"},
		{"127.0.0.1", "127.0.0.1"},
		{"[::1]", "::1"},
		{"::FFFF:7F00:1", "127.0.0.1"},
		{"*.127.0.0.1", "1.127.0.0.1"},
		{"*.[::1]", "a.::1"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "bücher.example"},
		{"\u212a.example", "k.example"}, // Kelvin sign
		{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
		{"example.com..", "example.com."},
		{"https://example.com", "example.com"},
		{"example.com:443", "example.com"},
		{"exa mple.com", "exa mple.com"},
		{"", ""},
		{".", "."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, host string) {
		if h, err := normalizeHost(host); err == nil {
			// Matching ignores ASCII case: the swapped name normalises to
			// the same host.
			swapped, err := normalizeHost(fzSwapCase(host))
			if err != nil || swapped != h {
				t.Errorf("normalizeHost(%q) = %q but normalizeHost(%q) = %q, %v", host, h, fzSwapCase(host), swapped, err)
			}
		}
		p, err := parseHostPattern(pattern)
		if err != nil {
			return
		}
		if q, err := parseHostPattern(fzSwapCase(pattern)); err != nil || q != p {
			t.Errorf("parseHostPattern(%q) = %+v but parseHostPattern(%q) = %+v, %v", pattern, p, fzSwapCase(pattern), q, err)
		}
		if h, err := normalizeHost(host); err == nil {
			_ = p.match(h)
		}
		switch p.wild {
		case 0:
			n, err := normalizeHost(pattern)
			if err != nil || !p.match(n) {
				t.Errorf("pattern %q does not match its own normalised name %q (%v)", pattern, n, err)
			}
		case 1:
			if p.match(p.base) {
				t.Errorf("pattern %q matches its apex %q", pattern, p.base)
			}
			if !p.match("x." + p.base) {
				t.Errorf("pattern %q does not match %q", pattern, "x."+p.base)
			}
			if p.match("x.y." + p.base) {
				t.Errorf("pattern %q matches two labels: %q", pattern, "x.y."+p.base)
			}
		case 2:
			if !p.match(p.base) || !p.match("x.y."+p.base) {
				t.Errorf("pattern %q does not match its apex %q and the names below it", pattern, p.base)
			}
		default:
			t.Errorf("parseHostPattern(%q) gave wild %d", pattern, p.wild)
		}
		if p.match("x" + p.base) {
			t.Errorf("pattern %q matches %q, which only ends with its name", pattern, "x"+p.base)
		}
	})
}

// fzSwapCase swaps the case of ASCII letters only.
func fzSwapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// TestHostListMistakesOneMessage: the same mistake gets the same message in
// every host list (PinSet.Host, Bearer.Hosts, AllowHosts): a URL, a path,
// an empty entry, and a port where none belongs.
func TestHostListMistakesOneMessage(t *testing.T) {
	t.Parallel()
	good := []string{fakePin('A'), fakePin('B')}
	configs := map[string]func(entry string) Config{
		"PinSet.Host": func(e string) Config { return Config{Pins: []PinSet{{Host: e, Pins: good}}} },
		"Bearer.Hosts": func(e string) Config {
			return Config{Bearer: &Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{e}}}
		},
		"AllowHosts": func(e string) Config { return Config{AllowHosts: []string{e}} },
	}
	tests := []struct {
		entry, want string
		portOK      bool // Bearer.Hosts takes a port
	}{
		{"https://127.0.0.1", "a URL, not a host", false},
		{"https://api.example.com:8443/v1", "a URL, not a host", false},
		{"api.example.com/v1", "a host with a path", false},
		{"", "empty entry (a trailing comma?)", false},
		{"api.example.com:8443", "a port where none belongs", true},
	}
	for _, tt := range tests {
		for list, cfg := range configs {
			_, err := newTransport(cfg(tt.entry))
			if tt.portOK && list == "Bearer.Hosts" {
				if err != nil {
					t.Errorf("%s %q: got %v, want a port accepted", list, tt.entry, err)
				}
				continue
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %q: got %v, want a *ConfigError saying %q", list, tt.entry, err, tt.want)
			}
		}
	}
}
