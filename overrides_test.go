package securehttp

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// TestOverrides checks the per-request overrides: WithoutRetries sends a
// failing request once, WithoutToken sends a request for a Bearer host
// without a token and without refreshing one.
func TestOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		ctx          func(context.Context) context.Context
		wantAttempts int64
		wantAuth     bool
	}{
		{"defaults", func(ctx context.Context) context.Context { return ctx }, 4, true},
		{"WithoutRetries", WithoutRetries, 1, true},
		{"WithoutToken", WithoutToken, 4, false},
		{"both", func(ctx context.Context) context.Context { return WithoutToken(WithoutRetries(ctx)) }, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var attempts, withAuth, refreshes atomic.Int64
			srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				if r.Header.Get("Authorization") != "" {
					withAuth.Add(1)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, Refresh: func(context.Context) (Token, error) {
				refreshes.Add(1)
				return Token{Value: "tok", Expiry: time.Now().Add(time.Hour)}, nil
			}}
			tr := newTestTransport(t, cfg)
			req, err := http.NewRequestWithContext(tt.ctx(t.Context()), http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || attempts.Load() != tt.wantAttempts {
				t.Errorf("got status %d after %d attempts, want 503 after %d", resp.StatusCode, attempts.Load(), tt.wantAttempts)
			}
			if got := withAuth.Load() == attempts.Load() && refreshes.Load() == 1; got != tt.wantAuth {
				t.Errorf("got %d of %d attempts with a token and %d refreshes, want token sent %v",
					withAuth.Load(), attempts.Load(), refreshes.Load(), tt.wantAuth)
			}
			if !tt.wantAuth && (withAuth.Load() != 0 || refreshes.Load() != 0) {
				t.Errorf("got %d attempts with a token and %d refreshes, want none", withAuth.Load(), refreshes.Load())
			}
		})
	}
}
