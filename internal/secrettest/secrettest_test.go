package secrettest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// leaky prints its secret through every path.
type leaky struct {
	Name   string
	Secret string
}

// leakyBytes holds its secret as bytes, which fmt prints in decimal or hex
// and encoding/json in base64.
type leakyBytes struct {
	Key []byte
}

// redacted prints no secret, through value receivers.
type redacted struct {
	Secret string
}

func (r redacted) String() string               { return "redacted{}" }
func (r redacted) GoString() string             { return r.String() }
func (r redacted) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(r.String())) }
func (r redacted) LogValue() slog.Value         { return slog.StringValue(r.String()) }
func (r redacted) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// pointerOnly redacts through pointer receivers only: held by value in
// another struct, fmt cannot call them.
type pointerOnly struct {
	Secret string
}

func (p *pointerOnly) String() string               { return "pointerOnly{}" }
func (p *pointerOnly) GoString() string             { return p.String() }
func (p *pointerOnly) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(p.String())) }
func (p *pointerOnly) LogValue() slog.Value         { return slog.StringValue(p.String()) }
func (p *pointerOnly) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// locked holds a lock, so that go vet refuses copies of it.
type locked struct {
	_      sync.Mutex
	Secret string
}

func TestLeaks(t *testing.T) {
	t.Parallel()
	secret := Canary("s", 32)
	tests := []struct {
		name string
		v    any
		// want lists paths that must be reported, each as its form and
		// printer; empty means none may be.
		want []string
	}{
		{"string field", leaky{"n", secret}, []string{"value fmt %v", "pointer fmt %+v", "value in a struct fmt %#v", "value slog text", "value slog JSON", "value encoding/json", "value fmt %x", "value fmt %X"}},
		{"bytes field", &leakyBytes{[]byte(secret)}, []string{"value fmt %v", "value fmt %d", "value fmt %x", "value fmt %s", "value encoding/json", "value slog JSON", "value in a struct slog text"}},
		{"redacting value receivers", redacted{secret}, nil},
		{"redacting pointer receivers", &pointerOnly{secret}, []string{"value in a struct fmt %+v", "value in a struct encoding/json"}},
		{"holding a lock", &locked{Secret: secret}, []string{"pointer fmt %v", "pointer in a struct fmt %s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			found, err := leaks(tt.v, secret)
			if err != nil {
				t.Fatalf("leaks: %v", err)
			}
			var paths []string
			for _, l := range found {
				path, _, _ := strings.Cut(l, " shows a secret")
				paths = append(paths, path)
			}
			if _, ok := tt.v.(*locked); ok && slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(p, "value") }) {
				t.Errorf("got leaks through %q, want none by value for a type holding a lock", paths)
			}
			if len(tt.want) == 0 && len(paths) > 0 {
				t.Errorf("got leaks %q, want none", found)
			}
			for _, w := range tt.want {
				if !slices.Contains(paths, w) {
					t.Errorf("got leaks through %q, want one through %q", paths, w)
				}
			}
		})
	}
}

func TestLeaksRefusesNil(t *testing.T) {
	t.Parallel()
	for _, v := range []any{nil, (*leaky)(nil)} {
		if _, err := leaks(v, Canary("s", 16)); err == nil {
			t.Errorf("leaks(%#v): got no error, want one", v)
		}
	}
}

func TestFindEncodings(t *testing.T) {
	t.Parallel()
	secret := Canary("enc", 32)
	// Each secret is found wherever it starts, whatever the encoding.
	for _, prefix := range []string{"", "a", "ab", "abc"} {
		b := []byte(prefix + secret + "tail")
		outs := map[string]string{
			"as is":          string(b),
			"in hex":         fmt.Sprintf("%x", b),
			"decimal bytes":  fmt.Sprint(b),
			"Go bytes":       fmt.Sprintf("%#v", b),
			"json of bytes":  string(must(json.Marshal(b))),
			"json of string": string(must(json.Marshal(string(b)))),
		}
		// A key schedule starts with the key, as 32-bit words.
		if prefix == "" {
			var w []uint32
			for k := b; len(k) >= 4; k = k[4:] {
				w = append(w, binary.LittleEndian.Uint32(k))
			}
			outs["32-bit words"] = fmt.Sprint(w)
			outs["32-bit words in hex"] = fmt.Sprintf("%x", w)
		}
		for name, out := range outs {
			if _, found := find(out, secret); !found {
				t.Errorf("prefix %q, %s: got not found in %q, want found", prefix, name, out)
			}
		}
	}
	if enc, found := find("nothing to see: "+Canary("other", 32), secret); found {
		t.Errorf("another canary: got found (%s), want not found", enc)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCanary(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 8, 32, 64} {
		c := Canary("x", n)
		if want := max(n, minSecretLen); len(c) != want {
			t.Errorf("Canary(x, %d): got %d bytes, want %d", n, len(c), want)
		}
	}
	if a, b := Canary("a", 32), Canary("b", 32); a == b {
		t.Errorf("Canary for two names: got %q twice, want two canaries", a)
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	sample := func(*testing.T) Sample { return Sample{} }
	tests := []struct {
		name string
		p    Package
		want []string // substrings of the problems, one each
	}{
		{"complete", Package{
			Samples:  map[string]func(*testing.T) Sample{"Keyed": sample, "Signing": sample, "Outer": sample},
			NoSecret: map[string]string{"Plain": "a name only", "Funcs": "functions only"},
		}, nil},
		{"unlisted", Package{
			Samples:  map[string]func(*testing.T) Sample{"Keyed": sample, "Signing": sample, "Outer": sample},
			NoSecret: map[string]string{"Plain": "a name only"},
		}, []string{"Funcs is not listed"}},
		{"secrets listed as none", Package{
			NoSecret: map[string]string{"Plain": "a name only", "Funcs": "functions only", "Keyed": "x", "Signing": "x", "Outer": "x"},
		}, []string{
			"Keyed is listed as holding no secret (\"x\"), but it looks like it holds one: field APIKey, named like a secret",
			"Outer is listed as holding no secret (\"x\"), but it looks like it holds one: field inner, a inner (field password, named like a secret)",
			"Signing is listed as holding no secret (\"x\"), but it looks like it holds one: field Signer, a crypto.Signer",
		}},
		{"listed twice, stale, no reason", Package{
			Samples:  map[string]func(*testing.T) Sample{"Keyed": sample, "Signing": sample, "Outer": sample, "Gone": sample},
			NoSecret: map[string]string{"Plain": " ", "Funcs": "functions only", "Keyed": "x"},
		}, []string{"Gone is listed but is not", "Keyed has a sample and is listed", "Plain is listed as holding no secret without a reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.p.Dir = "testdata/sample"
			got := tt.p.audit()
			if len(got) != len(tt.want) {
				t.Fatalf("got problems %q, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
