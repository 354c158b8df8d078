// Command report summarises the output of the securehttp benchmarks (go test
// -bench output, any number of runs): the median of each measure, the paired
// ratios to bare net/http with their confidence intervals, and each target
// judged met or missed from those figures, as Markdown; a chart of the
// paired ratios as SVG; and the README's benchmark figures.
//
// Usage:
//
//	go run ./cmd/report -in out/bench.txt -md out/tables.md -svg chart.svg \
//		-readme ../README.md -about "on a 2-core AMD EPYC, …"
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

func main() {
	in := flag.String("in", "out/bench.txt", "benchmark output to read")
	md := flag.String("md", "", "file for the Markdown tables (default: standard output)")
	svg := flag.String("svg", "", "file for the chart, SVG (default: none)")
	readme := flag.String("readme", "", "README whose generated benchmark part to rewrite (default: none)")
	about := flag.String("about", "", "for the README: the machine, Go version, commit and date of the run")
	chartRef := flag.String("readme-chart", "bench/chart.svg", "the chart's path relative to the README")
	flag.Parse()
	if err := run(*in, *md, *svg, *readme, *about, *chartRef); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, mdPath, svgPath, readmePath, about, chartRef string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := load(f, in)
	if err != nil {
		return err
	}
	if len(d.cases) == 0 {
		return errors.New("no benchmark results in " + in)
	}
	out := io.Writer(os.Stdout)
	if mdPath != "" {
		mf, err := os.Create(mdPath)
		if err != nil {
			return err
		}
		defer mf.Close()
		out = mf
	}
	if err := writeMarkdown(out, d); err != nil {
		return err
	}
	if svgPath != "" {
		if err := writeChart(svgPath, d, about); err != nil {
			return err
		}
	}
	if readmePath != "" {
		return writeReadme(readmePath, about, chartRef, d)
	}
	return nil
}

// results holds every measurement, by benchmark, case and client, in the
// order they first appear.
type results struct {
	cases   map[string][]string           // benchmark → its cases ("proto=h1/conc=1")
	clients map[string][]string           // benchmark → its clients
	values  map[cell]map[string][]float64 // cell → unit → one value per run
}

type cell struct{ bench, cas, client string }

// load reads go test -bench output. A benchmark named
// Get/proto=h1/conc=1/client=bare-2 is benchmark "Get", case
// "proto=h1/conc=1", client "bare"; GOMAXPROCS is dropped. Units are kept as
// go test printed them (ns/op, not benchfmt's tidied sec/op).
func load(r io.Reader, name string) (*results, error) {
	d := &results{
		cases:   map[string][]string{},
		clients: map[string][]string{},
		values:  map[cell]map[string][]float64{},
	}
	br := benchfmt.NewReader(r, name)
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // a syntax error or unit metadata: go test prints neither
		}
		base, parts := res.Name.Parts()
		var caseParts []string
		client := ""
		for _, p := range parts {
			s := string(p)
			if strings.HasPrefix(s, "-") {
				continue // GOMAXPROCS
			}
			s = strings.TrimPrefix(s, "/")
			if v, ok := strings.CutPrefix(s, "client="); ok {
				client = v
				continue
			}
			caseParts = append(caseParts, s)
		}
		c := cell{bench: string(base), cas: strings.Join(caseParts, "/"), client: client}
		if !slices.Contains(d.cases[c.bench], c.cas) {
			d.cases[c.bench] = append(d.cases[c.bench], c.cas)
		}
		if !slices.Contains(d.clients[c.bench], c.client) {
			d.clients[c.bench] = append(d.clients[c.bench], c.client)
		}
		if d.values[c] == nil {
			d.values[c] = map[string][]float64{}
		}
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, val = v.OrigUnit, v.OrigValue
			}
			d.values[c][unit] = append(d.values[c][unit], val)
		}
	}
	return d, br.Err()
}

// get returns the runs of one measure.
func (d *results) get(bench, cas, client, unit string) []float64 {
	return d.values[cell{bench, cas, client}][unit]
}

// median returns the median of one measure, and false when it was not
// measured.
func (d *results) median(bench, cas, client, unit string) (float64, bool) {
	v := d.get(bench, cas, client, unit)
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2], true
	} else {
		return (s[n/2-1] + s[n/2]) / 2, true
	}
}

// runs is how many runs a benchmark has, the least over its cells. A client
// that has no run of a case (resty has no replayable upload) does not count.
func (d *results) runs(bench string) int {
	n := -1
	for _, cas := range d.cases[bench] {
		for _, cl := range d.clients[bench] {
			v := d.get(bench, cas, cl, firstUnit(d, bench, cas, cl))
			if len(v) > 0 && (n < 0 || len(v) < n) {
				n = len(v)
			}
		}
	}
	return max(n, 0)
}

func firstUnit(d *results, bench, cas, client string) string {
	for u := range d.values[cell{bench, cas, client}] {
		return u
	}
	return ""
}
