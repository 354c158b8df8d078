package otelsecurehttp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/otelsecurehttp"
)

// Every attempt is a CLIENT span: here a 503 and its retry. url.full keeps
// no query string, so the API key below is recorded nowhere.
func ExampleNewHooks() {
	// A server, with a certificate from a private CA, that fails the
	// first request.
	root := testpki.Must(testpki.NewRoot("example root", testpki.Options{}))
	leaf := testpki.Must(root.NewLeaf("127.0.0.1", testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}))
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testpki.TLSCertificate(leaf)}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	// In a service, the global providers set up at start-up are used, and
	// NewHooks needs no option.
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer tp.Shutdown(context.Background())

	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs: root.Pool(),
		Retry:   securehttp.RetryPolicy{MinWait: time.Millisecond},
		Hooks:   otelsecurehttp.NewHooks(otelsecurehttp.WithTracerProvider(tp)),
	})
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
