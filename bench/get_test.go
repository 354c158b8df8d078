package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkGet measures a keep-alive GET of a small JSON reply, over HTTP/1.1
// and HTTP/2, from 1 and from 64 goroutines, for every client. Connections
// are made before the timer starts, so this is the per-request cost: for
// securehttp, the bearer header, the retry engine and whatever else runs on
// each request (the pin check belongs to the handshake and must not show).
//
// With 64 goroutines, ns/op is wall time divided by requests: the inverse of
// throughput. cpu-ns/op is the CPU time the client process spent per
// request. B/op, allocs/op and cpu-ns/op are the client's alone, since the
// server runs in another process.
func BenchmarkGet(b *testing.B) {
	f := server(b)
	for _, proto := range []struct{ name, host string }{{"h1", hostH1}, {"h2", hostH2}} {
		for _, conc := range []int{1, 64} {
			for _, mk := range comparators() {
				c := mk.new(b, f)
				url := "https://" + proto.host + "/get"
				b.Run(fmt.Sprintf("proto=%s/conc=%d/client=%s", proto.name, conc, mk.name), func(b *testing.B) {
					ctx := b.Context()
					// Open the connections the measured requests will
					// reuse: up to 64 over HTTP/1.1, one over HTTP/2.
					if err := concurrently(conc, conc, func() error { return c.get(ctx, url) }); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					cpu := cpuTime()
					b.ResetTimer()
					if err := concurrently(conc, b.N, func() error { return c.get(ctx, url) }); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
				})
				c.close()
			}
		}
	}
}

// concurrently calls op n times in all from conc goroutines, exactly conc of
// them whatever GOMAXPROCS is (b.RunParallel would start a multiple of
// GOMAXPROCS). It returns the first error.
func concurrently(conc, n int, op func() error) error {
	if conc == 1 {
		for range n {
			if err := op(); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := op(); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
