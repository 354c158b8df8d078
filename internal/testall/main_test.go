package main

import (
	"bytes"
	"strings"
	"testing"
)

// A package whose peer is missing prints "ok" under go test; the summary
// names its skipped tests and why, grouped by reason.
func TestSummaryListsSkippedTestsAndWhy(t *testing.T) {
	t.Parallel()
	stream := strings.Join([]string{
		`{"Action":"run","Package":"example.com/redisstore","Test":"TestFleet"}`,
		`{"Action":"output","Package":"example.com/redisstore","Test":"TestFleet","Output":"=== RUN   TestFleet\n"}`,
		`{"Action":"output","Package":"example.com/redisstore","Test":"TestFleet","Output":"    helpers_test.go:40: redis-server not found: apt-get install redis-server\n"}`,
		`{"Action":"output","Package":"example.com/redisstore","Test":"TestFleet","Output":"--- SKIP: TestFleet (0.00s)\n"}`,
		`{"Action":"output","Package":"example.com/redisstore","Test":"TestFleet","Output":"    helpers_test.go:40: redis-server not found: apt-get install redis-server\n"}`,
		`{"Action":"skip","Package":"example.com/redisstore","Test":"TestFleet","Elapsed":0}`,
		`{"Action":"output","Package":"example.com/redisstore","Test":"TestLoad","Output":"--- SKIP: TestLoad (0.00s)\n"}`,
		`{"Action":"output","Package":"example.com/redisstore","Test":"TestLoad","Output":"    store_test.go:9: redis-server not found: apt-get install redis-server\n"}`,
		`{"Action":"skip","Package":"example.com/redisstore","Test":"TestLoad","Elapsed":0}`,
		`{"Action":"pass","Package":"example.com/redisstore","Elapsed":0.5}`,
		`{"Action":"pass","Package":"example.com/root","Test":"TestOK","Elapsed":0.1}`,
		`{"Action":"pass","Package":"example.com/root","Elapsed":1.5}`,
	}, "\n")
	var out bytes.Buffer
	r := newReport(&out)
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	r.summary()
	got := out.String()
	for _, want := range []string{
		"ok  \texample.com/redisstore\t0.500s",
		"ok  \texample.com/root\t1.500s",
		"testall: 2 tests were skipped and did not run:",
		"  redis-server not found: apt-get install redis-server\n    2: example.com/redisstore.TestFleet, example.com/redisstore.TestLoad",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("got output\n%s\nwant it to contain %q", got, want)
		}
	}
}

// A failing test's output is printed; a passing one's is not.
func TestFailuresPrintTheirOutput(t *testing.T) {
	t.Parallel()
	stream := strings.Join([]string{
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"    x_test.go:3: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestBad","Elapsed":0}`,
		`{"Action":"output","Package":"p","Test":"TestGood","Output":"    chatter\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestGood","Elapsed":0}`,
		`{"Action":"fail","Package":"p","Elapsed":0.2}`,
	}, "\n")
	var out bytes.Buffer
	r := newReport(&out)
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	r.summary()
	got := out.String()
	if !strings.Contains(got, "got 1, want 2") || !strings.Contains(got, "FAIL\tp\t0.200s") {
		t.Errorf("got %q, want the failing test's output and the package's FAIL line", got)
	}
	if strings.Contains(got, "chatter") {
		t.Errorf("got %q, want no output of a passing test", got)
	}
	if !strings.Contains(got, "no test was skipped") {
		t.Errorf("got %q, want the summary to say no test was skipped", got)
	}
}
