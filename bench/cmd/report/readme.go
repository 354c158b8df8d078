package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The README's generated part lies between these two lines, which stay.
const (
	readmeBegin = "<!-- begin: written by bench/run.sh (cmd/report -readme); edit bench/cmd/report/readme.go, not this part -->"
	readmeEnd   = "<!-- end: written by bench/run.sh -->"
)

// errNoMarkers means the README lacks the lines that delimit its part.
var errNoMarkers = errors.New("the README has no " + readmeBegin + " ... " + readmeEnd + " part to replace")

// writeReadme replaces the generated part of the README at path with the
// figures of d. about names the run (machine, Go, commit, date); chart is the
// chart's path relative to the README.
func writeReadme(path, about, chart string, d *results) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(old, []byte(readmeBegin))
	j := bytes.Index(old, []byte(readmeEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s: %w", path, errNoMarkers)
	}
	var b bytes.Buffer
	b.Write(old[:i+len(readmeBegin)])
	b.WriteString("\n")
	b.WriteString(readmeSection(about, chart, d))
	b.Write(old[j:])
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// readmeSection is the README's generated part: which targets were met and
// which missed, the chart, and the comparison with the other clients.
func readmeSection(about, chart string, d *results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if about != "" {
		p("Measured %s.\n\n", about)
	}
	cs := checks(d)
	p("%s\n\n", summary(cs))
	p("![securehttp ÷ bare net/http, paired, with 95%% confidence intervals](%s)\n\n", chart)
	p("The chart and the time figures are *paired*: securehttp and the other client take turns in blocks of a few "+
		"milliseconds, in one process, so that load from elsewhere on the machine falls on both alike. Each point "+
		"is the median of %d runs and its bar the %.0f%% confidence interval of that median. Ratios of separate runs, "+
		"one client after the other, can put securehttp below 1.00 (faster than bare net/http, while it does more work): "+
		"they are in RESULTS.md, labelled, and are not quoted here.\n\n", max(d.runs(benchPaired), d.runs(benchHSPaired)), confidence*100)
	targetsTable(p, cs)

	clients := d.clients[benchGet]
	if len(clients) == 0 {
		clients = d.clients[benchUpload]
	}
	if len(clients) == 0 {
		return b.String()
	}
	p("\n| measure |")
	for _, cl := range clients {
		p(" %s |", clientLabel(cl))
	}
	p("\n| --- |%s\n", strings.Repeat(" ---: |", len(clients)))
	for _, cas := range d.cases[benchGet] {
		if !strings.HasSuffix(cas, "conc=1") {
			continue // allocations do not depend on the concurrency
		}
		p("| keep-alive GET, %s, allocs/op |", strings.TrimSuffix(getCaseLabel(cas), ", 1 goroutine"))
		for _, cl := range clients {
			p(" %s |", bold(cl, num(d, benchGet, cas, cl, "allocs/op", "%.0f")))
		}
		p("\n")
	}
	for _, cas := range d.cases[benchUpload] {
		p("| 128 MiB upload, %s, allocated |", uploadCaseLabel(cas))
		for _, cl := range clients {
			p(" %s |", bold(cl, uploadAllocs(d, cas, cl)))
		}
		p("\n")
	}
	p("\nIn the upload with an io.Reader without GetBody, go-retryablehttp and resty read the whole body into memory so that " +
		"they can retry it, while securehttp streams it and does not retry it: that row compares buffering with " +
		"streaming. The replayable-body row is like for like: every client can retry and streams. resty v2 has no " +
		"way to stream a body.\n")
	return b.String()
}

// bold marks securehttp's figures.
func bold(cl, s string) string {
	if cl == secure && s != missing {
		return "**" + s + "**"
	}
	return s
}
