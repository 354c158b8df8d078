package main

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/otelsecurehttp"
)

func main() {
	// OpenTelemetry set up as a service does anyway: add your exporter
	// (OTLP, stdout) to the provider.
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	client, err := securehttp.NewClient(securehttp.Config{
		Hooks: otelsecurehttp.NewHooks(), // the global providers and propagator
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, span := otel.Tracer("example").Start(context.Background(), "sync-orders")
	defer span.End()
	// One span per attempt, children of "sync-orders"; url.full is
	// https://example.com/orders, without the key.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://example.com/orders?api_key=never-recorded", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(securehttp.Redacted(err)) // the error without the URL's query
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}
