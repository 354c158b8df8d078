package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/securehttp/securehttp/otelsecurehttp"
)

// BenchmarkGetOTel measures the keep-alive GETs of BenchmarkGet with
// OpenTelemetry on: otelhttp.NewTransport around bare net/http, and
// securehttp (token, pins, retries) with the otelsecurehttp hooks. Both use
// the same SDK providers, sampling every span and propagating W3C trace
// context, with no exporter, so that what is measured is the
// instrumentation and the SDK, not an exporter's I/O. The securehttp row
// also counts what otelhttp has no notion of: pins, tokens, retries.
func BenchmarkGetOTel(b *testing.B) {
	f := server(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	prop := propagation.TraceContext{}
	makers := []maker{
		{"otelhttp", func(_ *testing.B, f *fixture) *client {
			rt := otelhttp.NewTransport(f.baseTransport(),
				otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop))
			return stdClient("otelhttp", &http.Client{Transport: rt})
		}},
		{"securehttp-otel", func(b *testing.B, f *fixture) *client {
			hc := f.secureClient(b, secureOptions{
				pins:    true,
				token:   longJWT(time.Now()),
				refresh: func(context.Context) (string, error) { return longJWT(time.Now()), nil },
				hooks: otelsecurehttp.NewHooks(otelsecurehttp.WithTracerProvider(tp),
					otelsecurehttp.WithMeterProvider(mp), otelsecurehttp.WithPropagators(prop)),
			})
			return stdClient("securehttp-otel", hc)
		}},
	}
	for _, proto := range []struct{ name, host string }{{"h1", hostH1}, {"h2", hostH2}} {
		for _, conc := range []int{1, 64} {
			for _, mk := range makers {
				c := mk.new(b, f)
				url := "https://" + proto.host + "/get"
				b.Run(fmt.Sprintf("proto=%s/conc=%d/client=%s", proto.name, conc, mk.name), func(b *testing.B) {
					ctx, span := tp.Tracer("bench").Start(b.Context(), "caller")
					defer span.End()
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
