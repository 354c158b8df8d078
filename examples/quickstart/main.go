// Command quickstart calls an API through securehttp: TLS verified against
// a private root, the host pinned, and a bearer token from an OAuth 2.0
// token endpoint, sent to that host only. Start the demo's servers with
// "go run ./cmd/securehttp demo --serve": it prints the values to export.
package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"strings"

	"github.com/securehttp/securehttp"
)

func main() {
	api, err := url.Parse(os.Getenv("SECUREHTTP_URL"))
	if err != nil || api.Host == "" {
		log.Fatal("set SECUREHTTP_URL and the others: run `go run ./cmd/securehttp demo --serve` and paste what it prints")
	}
	rootPEM, err := os.ReadFile(os.Getenv("SECUREHTTP_CACERT"))
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		log.Fatal("SECUREHTTP_CACERT holds no PEM certificate")
	}

	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs: roots, // a private CA; nil means the system roots
		Pins: []securehttp.PinSet{{
			Host: api.Hostname(),
			Pins: strings.Split(os.Getenv("SECUREHTTP_PINS"), ","), // the key in use and a backup
		}},
		Bearer: &securehttp.Bearer{
			Hosts: []string{api.Hostname()}, // the token goes there and nowhere else
			ClientCredentials: &securehttp.ClientCredentials{
				TokenURL:     os.Getenv("SECUREHTTP_TOKEN_URL"),
				ClientID:     os.Getenv("SECUREHTTP_CLIENT_ID"),
				ClientSecret: os.Getenv("SECUREHTTP_CLIENT_SECRET"),
			},
		},
	})
	if err != nil {
		log.Fatal(err) // a *securehttp.ConfigError naming the bad entry
	}
	defer client.CloseIdleConnections()

	resp, err := client.Get(api.String())
	if err != nil {
		log.Fatal(securehttp.Redacted(err)) // the error without the URL's query
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n%s", resp.Status, body)
	if resp.StatusCode != 200 {
		os.Exit(1)
	}
}
