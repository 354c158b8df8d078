// Command buildpeers builds the Go peers (Ory Hydra, zitadel/oidc) into the
// cache that the tests use (peers.CacheDir), so that no test pays for a
// build. CI runs it before the tests: go run ./internal/peers/buildpeers.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
)

func main() {
	for _, p := range []peers.GoPeer{peers.Hydra, peers.Zitadel} {
		start := time.Now()
		bin, err := p.Build(context.Background())
		if err != nil {
			fmt.Fprintf(os.Stderr, "buildpeers: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("%s: %s (%v)\n", p.Name, bin, time.Since(start).Round(time.Second))
	}
}
