package otelsecurehttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testutil"
	"github.com/securehttp/securehttp/otelsecurehttp"
	"github.com/securehttp/securehttp/securehttptest"
)

// Every attempt is a CLIENT span: here a 503 and its retry. url.full keeps
// no query string, so the API key below is recorded nowhere.
func ExampleNewHooks() {
	// A server of the test kit, securehttptest, that fails the first
	// request.
	t := testutil.NewExampleT() // the test kit takes a test's t
	defer t.Done()
	var n atomic.Int64
	srv := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))

	// In a service, the global providers set up at start-up are used, and
	// NewHooks needs no option.
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer tp.Shutdown(context.Background())

	cfg := srv.Config() // trusts the test kit's CA
	cfg.Retry = securehttp.RetryPolicy{MinWait: time.Millisecond}
	cfg.Hooks = otelsecurehttp.NewHooks(otelsecurehttp.WithTracerProvider(tp))
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/orders?api_key=secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()

	for _, s := range exporter.GetSpans() {
		line := []string{s.Name, s.SpanKind.String()}
		for _, kv := range s.Attributes {
			v := kv.Value.String()
			switch kv.Key {
			case "url.full":
				v = strings.TrimPrefix(v, srv.URL)
			case "server.port":
				continue
			}
			line = append(line, string(kv.Key)+"="+v)
		}
		fmt.Println(strings.Join(line, " "))
	}
	// Output:
	// GET client http.request.method=GET server.address=127.0.0.1 url.full=/orders http.response.status_code=503 error.type=503
	// GET client http.request.method=GET server.address=127.0.0.1 url.full=/orders http.request.resend_count=1 http.response.status_code=200
}
