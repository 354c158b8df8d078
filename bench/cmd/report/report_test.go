package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// line is one go test -bench result line: name, then value-unit pairs.
func line(name string, metrics ...any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Benchmark%s-2 \t 100", name)
	for i := 0; i+1 < len(metrics); i += 2 {
		fmt.Fprintf(&b, "\t %v %v", metrics[i], metrics[i+1])
	}
	return b.String() + "\n"
}

// parse loads benchmark output given as lines.
func parse(t *testing.T, lines ...string) *results {
	t.Helper()
	d, err := load(strings.NewReader("goos: linux\n"+strings.Join(lines, "")), "test")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// paired is one line of a paired benchmark per ratio.
func paired(name string, ratios ...float64) []string {
	var out []string
	for _, r := range ratios {
		out = append(out, line(name, 0, "ns/op", 1000, "base-ns/op", 1000*r, "securehttp-ns/op", r, "ratio", r, "cpu-ratio"))
	}
	return out
}

func repeat(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestChecks(t *testing.T) {
	t.Parallel()
	get := func(cl string, allocs int) string {
		return line("Get/proto=h1/conc=1/client="+cl, 1000, "ns/op", 900, "cpu-ns/op", 3000, "B/op", allocs, "allocs/op")
	}
	upload := func(b int) string {
		return line("Upload/body=reader/client=securehttp", 1e8, "ns/op", b, "B/op", 60, "allocs/op")
	}
	stampede := func(at string, refreshes, delayed int) string {
		return line("RefreshStampede/at="+at, 0, "ns/op", refreshes, "refreshes", delayed, "delayed")
	}
	tests := []struct {
		name          string
		lines         []string
		target, cas   string // which check, by the start of its target
		met, unsettle bool
	}{
		{"GET paired well under the line", append([]string{get("bare", 51), get("securehttp", 52)},
			paired("GetPaired/base=bare/proto=h1/conc=1", 1.01, 1.02, 1.015, 1.012, 1.018, 1.011)...),
			"keep-alive GET time", "HTTP/1.1, 1 goroutine", true, false},
		{"GET paired over the line in every run", append([]string{get("bare", 51), get("securehttp", 52)},
			paired("GetPaired/base=bare/proto=h1/conc=1", 1.04, 1.05, 1.045, 1.06, 1.041, 1.052)...),
			"keep-alive GET time", "HTTP/1.1, 1 goroutine", false, false},
		{"GET paired median under, interval across", append([]string{get("bare", 51), get("securehttp", 52)},
			paired("GetPaired/base=bare/proto=h1/conc=1", 1.02, 1.025, 1.028, 1.029, 1.035, 1.04)...),
			"keep-alive GET time", "HTTP/1.1, 1 goroutine", true, true},
		{"GET paired once: no interval, the median decides", append([]string{get("bare", 51), get("securehttp", 52)},
			paired("GetPaired/base=bare/proto=h1/conc=1", 1.04)...),
			"keep-alive GET time", "HTTP/1.1, 1 goroutine", false, false},
		{"separate runs alone decide nothing", []string{
			line("Get/proto=h1/conc=1/client=bare", 2000, "ns/op", 51, "allocs/op"),
			line("Get/proto=h1/conc=1/client=securehttp", 1000, "ns/op", 52, "allocs/op")},
			"keep-alive GET time", "", false, false},
		{"4 extra allocations", []string{get("bare", 51), get("securehttp", 55)},
			"keep-alive GET allocs", "HTTP/1.1, 1 goroutine", true, false},
		{"5 extra allocations", []string{get("bare", 51), get("securehttp", 56)},
			"keep-alive GET allocs", "HTTP/1.1, 1 goroutine", false, false},
		{"pins 1.5% slower", paired("HandshakePaired/base=nopins/handshake=full", 1.015, 1.012, 1.018, 1.016, 1.011, 1.014),
			"handshake with pins", "full", true, false},
		{"pins 2.5% faster is 2.5% apart", paired("HandshakePaired/base=nopins/handshake=full", 0.975, 0.976, 0.974, 0.975, 0.977, 0.973),
			"handshake with pins", "full", false, false},
		{"pins against bare net/http are no target", paired("HandshakePaired/base=bare/handshake=full", 1.5, 1.5, 1.5, 1.5, 1.5, 1.5),
			"handshake with pins", "", false, false},
		{"upload under 1 MiB in every run", []string{upload(60 << 10), upload(900 << 10), upload(70 << 10)},
			"128 MiB upload", "io.Reader without GetBody", true, false},
		{"upload over 1 MiB in one run of three", []string{upload(60 << 10), upload(1 << 20), upload(70 << 10)},
			"128 MiB upload", "io.Reader without GetBody", false, false},
		{"one refresh in every run", repeat(6, stampede("expiry", 1, 1000)),
			"refresh stampede: 1 refresh", "at expiry", true, false},
		{"two refreshes in one run", append(repeat(5, stampede("expiry", 1, 1000)), stampede("expiry", 2, 1000)),
			"refresh stampede: 1 refresh", "at expiry", false, false},
		{"nobody delayed in the window", repeat(6, stampede("window", 1, 0)),
			"refresh stampede: 0 requests delayed", "in window", true, false},
		{"one request delayed in one run", append(repeat(5, stampede("window", 1, 0)), stampede("window", 1, 1)),
			"refresh stampede: 0 requests delayed", "in window", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var found []check
			for _, c := range checks(parse(t, tt.lines...)) {
				if strings.HasPrefix(c.target, tt.target) {
					found = append(found, c)
				}
			}
			if tt.cas == "" {
				if len(found) != 0 {
					t.Fatalf("got %d checks of %q (%+v), want none", len(found), tt.target, found)
				}
				return
			}
			if len(found) != 1 {
				t.Fatalf("got %d checks of %q, want 1", len(found), tt.target)
			}
			c := found[0]
			if c.cas != tt.cas || c.met != tt.met || c.unsettled != tt.unsettle {
				t.Errorf("got case %q, met %v, unsettled %v (%s); want %q, %v, %v", c.cas, c.met, c.unsettled, c.measured, tt.cas, tt.met, tt.unsettle)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	d := parse(t, append(paired("GetPaired/base=bare/proto=h1/conc=1", 1.04, 1.05, 1.045, 1.06, 1.041, 1.052),
		line("Get/proto=h1/conc=1/client=bare", 1000, "ns/op", 51, "allocs/op"),
		line("Get/proto=h1/conc=1/client=securehttp", 1000, "ns/op", 52, "allocs/op"))...)
	got := summary(checks(d))
	for _, want := range []string{"**1 of 2 targets met; 1 missed:**", "1.047 × (95% CI 1.040–1.060)",
		"Not judged, for want of the benchmark that measures it in this run: " + pinsTarget + "; " + uploadTarget} {
		if !strings.Contains(got, want) {
			t.Errorf("got summary %q, want it to contain %q", got, want)
		}
	}
}

// svgText returns the text elements of an SVG document, failing the test
// unless it is well-formed XML.
func svgText(t *testing.T, r io.Reader) []string {
	t.Helper()
	var texts []string
	dec := xml.NewDecoder(r)
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts
		}
		if err != nil {
			t.Fatalf("got invalid SVG: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
}

func TestChart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ratios []float64
		want   []string // texts the chart must show
	}{
		{"near 1: ticks 1% apart", []float64{1.01, 1.02, 1.015, 1.012, 1.018, 1.011},
			[]string{"1.00", "1.01", "1.02", "1.03", "1.014 [1.010, 1.020]"}},
		{"far from 1: still every point", []float64{1.4, 1.5, 1.45, 1.42, 1.48, 1.41},
			[]string{"1.00", "1.435 [1.400, 1.500]"}},
		{"one run: no interval", []float64{1.01},
			[]string{"1.010 (no CI: 1 runs)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := parse(t, append(paired("GetPaired/base=bare/proto=h1/conc=1", tt.ratios...),
				paired("HandshakePaired/base=nopins/handshake=full", tt.ratios...)...)...)
			var buf bytes.Buffer
			if err := drawChart(&buf, d, "on a test"); err != nil {
				t.Fatal(err)
			}
			texts := svgText(t, &buf)
			for _, want := range tt.want {
				n := 0
				for _, s := range texts {
					if s == want {
						n++
					}
				}
				if n == 0 {
					t.Errorf("got no text %q in the chart, want it (texts: %q)", want, texts)
				}
			}
		})
	}
}

func TestWriteReadme(t *testing.T) {
	t.Parallel()
	d := parse(t, paired("GetPaired/base=bare/proto=h1/conc=1", 1.01, 1.02, 1.015, 1.012, 1.018, 1.011)...)
	dir := t.TempDir()
	tests := []struct {
		name    string
		readme  string
		wantErr error
	}{
		{"markers", "# x\n\n## Benchmarks\n\nintro\n\n" + readmeBegin + "\nold figures\n" + readmeEnd + "\n\n## Next\n", nil},
		{"no markers", "# x\n\n## Benchmarks\n\nold figures\n", errNoMarkers},
		{"end before begin", readmeEnd + "\n" + readmeBegin + "\n", errNoMarkers},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("README%d.md", i))
			if err := os.WriteFile(path, []byte(tt.readme), 0o644); err != nil {
				t.Fatal(err)
			}
			err := writeReadme(path, "on a test", "bench/chart.svg", d)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil {
				if string(got) != tt.readme {
					t.Errorf("got README changed to %q after an error, want it untouched", got)
				}
				return
			}
			s := string(got)
			for _, want := range []string{"# x\n\n## Benchmarks\n\nintro\n\n" + readmeBegin + "\n", readmeEnd + "\n\n## Next\n",
				"Measured on a test.", "**1 of 1 targets met, none missed.**", "](bench/chart.svg)"} {
				if !strings.Contains(s, want) {
					t.Errorf("got README %q, want it to contain %q", s, want)
				}
			}
			if strings.Contains(s, "old figures") {
				t.Errorf("got README %q, want the old figures gone", s)
			}
		})
	}
}
