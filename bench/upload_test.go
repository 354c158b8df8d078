package bench

import (
	"context"
	"io"
	"runtime"
	"testing"
)

// uploadSize is the streamed body of BenchmarkUpload: large enough that a
// client that buffers it cannot hide it.
const uploadSize = 128 << 20

// BenchmarkUpload PUTs 128 MiB over HTTP/1.1 from a generated body that is
// never materialised. B/op is what the client allocated for one upload (the
// server is another process); MiB/op is the same figure in MiB.
// securehttp's target is under 1 MiB.
//
// With body=reader the body is an io.Reader without GetBody: it cannot be
// replayed, so a client that wants to retry it must first read it into
// memory, and go-retryablehttp (through StandardClient) and resty do. bare
// net/http, oauth2 and securehttp stream it (securehttp then does not retry
// the request). With body=replayable, the like-for-like case, each client
// gets a body that it can make again for a retry, and streams it:
// net/http-based clients through GetBody, go-retryablehttp through its own
// API's ReaderFunc. resty v2 has no such way (it reads any io.Reader body
// into memory), so it has no body=replayable case.
func BenchmarkUpload(b *testing.B) {
	f := server(b)
	newBody := func() io.Reader { return &patternReader{left: uploadSize} }
	for _, body := range []string{"reader", "replayable"} {
		for _, mk := range comparators() {
			c := mk.new(b, f)
			upload := func(ctx context.Context, url string) error {
				return c.upload(ctx, url, newBody(), uploadSize)
			}
			if body == "replayable" {
				if c.uploadReplayable == nil {
					c.close()
					continue
				}
				upload = func(ctx context.Context, url string) error {
					return c.uploadReplayable(ctx, url, newBody, uploadSize)
				}
			}
			b.Run("body="+body+"/client="+mk.name, func(b *testing.B) {
				ctx := b.Context()
				// The connection is made before the timer starts.
				if err := c.get(ctx, "https://"+hostH1+"/get"); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(uploadSize)
				b.ReportAllocs()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				for range b.N {
					if err := upload(ctx, "https://"+hostH1+"/upload"); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB/op")
			})
			c.close()
		}
	}
}

// patternReader yields left bytes of a fixed pattern without ever holding
// more than its 4 KiB block: the body is generated, never materialised.
type patternReader struct {
	left int64
	off  int
}

var pattern = func() (p [4096]byte) {
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}()

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], pattern[r.off:])
		n += c
		r.off = (r.off + c) % len(pattern)
	}
	r.left -= int64(n)
	return n, nil
}
