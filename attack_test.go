package securehttp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// A ClientCredentials held by value, as in an application's own config
// struct, prints no secret either: not the client secret, not the private
// key, with any verb and as an slog value.
func TestAttackClientCredentialsValueRedacted(t *testing.T) {
	t.Parallel()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "attack-client-secret-value"
	cc := ClientCredentials{Issuer: "https://as.test", ClientID: "svc", Key: key, ClientSecret: secret}
	type appConfig struct {
		Name  string
		OAuth ClientCredentials
	}
	app := appConfig{Name: "app", OAuth: cc}

	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	logger.Info("config", "cc", cc, "app", app)
	var jsonLogged bytes.Buffer
	// The JSON handler marshals a struct field by field, and a pointer
	// field with it: LogValue is not consulted there.
	ptr := struct{ OAuth *ClientCredentials }{&cc}
	slog.New(slog.NewJSONHandler(&jsonLogged, nil)).Info("config", "cc", cc, "ptr", ptr)

	outputs := map[string]string{
		"slog text": logged.String(),
		"slog json": jsonLogged.String(),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		outputs[verb] = fmt.Sprintf(verb, cc)
		outputs[verb+" nested"] = fmt.Sprintf(verb, app)
	}
	// The key as fmt prints a byte slice, in decimal, hex and base64.
	keyForms := []string{
		strings.Trim(fmt.Sprint([]byte(key[:8])), "[]"),
		fmt.Sprintf("%x", []byte(key[:8])),
		base64.StdEncoding.EncodeToString(key[:12]),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("%s: got %q, want no client secret", name, out)
		}
		for _, k := range keyForms {
			if strings.Contains(out, k) {
				t.Errorf("%s: got %q, want no private key bytes (found %q)", name, out, k)
			}
		}
	}
}

// An IP literal spelt with Unicode characters that IDNA maps to ASCII
// (full-width digits, ideographic full stops, circled digits) is the same
// literal to net/http, which sends it to the proxy in ASCII: it is refused
// before CONNECT like its ASCII spelling.
func TestAttackUnicodeIPLiteralThroughProxy(t *testing.T) {
	t.Parallel()
	srv, _, requests := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	proxyURL, tunnels := testutil.ConnectProxy(t)
	cfg := testConfig(t)
	cfg.BlockPrivateNetworks = true
	cfg.Proxy = http.ProxyURL(proxyURL)
	cfg.Retry.MaxRetries = -1
	tr := newTestTransport(t, cfg)
	e, err := newEgress(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"１２７.０.０.１", "127。0。0。1", "①②⑦.0.0.1", "１２７。１", "ＬＯＣＡＬＨＯＳＴ"} {
		t.Run(host, func(t *testing.T) {
			if host == "ＬＯＣＡＬＨＯＳＴ" {
				// A name, Unicode or not, is the proxy's to resolve.
				if err := e.checkHost(host); err != nil {
					t.Fatalf("checkHost(%q): got %v, want the name left to the dial check", host, err)
				}
				return
			}
			if err := e.checkHost(host); !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("checkHost(%q): got %v, want ErrBlockedAddress", host, err)
			}
			beforeTunnels, beforeReqs := tunnels.Load(), requests.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+":"+port+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("through the proxy: got %v, want ErrBlockedAddress", err)
			}
			if n, r := tunnels.Load()-beforeTunnels, requests.Load()-beforeReqs; n != 0 || r != 0 {
				t.Errorf("the proxy opened %d tunnels and the loopback server saw %d requests, want 0 and 0", n, r)
			}
		})
	}
}

// A host spelt with non-ASCII characters that IDNA maps to a served name
// ("ａｐｉ.test", full-width) reaches that name once. With net/http's
// bundled HTTP/2 (go1.26), the pool files the new connection under the
// ASCII name and looks for it under the Unicode one, so the request dials,
// handshakes and drops connections in a tight loop until its context ends,
// and forever without a deadline. A hostile server triggers it with a
// redirect to the Unicode spelling of any HTTP/2 host.
func TestAttackNonASCIIHostReconnectLoop(t *testing.T) {
	t.Parallel()
	var srvURL string
	srv, conns, requests := startCountingServer(t, "", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, strings.Replace(srvURL, "127.0.0.1", "ａｐｉ.test", 1)+"/", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	srvURL = srv.URL
	cfg := testConfig(t)
	cfg.Retry.MaxRetries = -1
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	for _, tt := range []struct{ name, url string }{
		{"request", testutil.HostURL(srv, "ａｐｉ.test", "/")},
		{"redirect hop", testutil.HostURL(srv, hostAPI, "/redirect")},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
		beforeConns, beforeReqs := conns.N.Load(), requests.Load()
		resp, err := client.Do(req)
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err != nil || string(body) != "ok" {
			t.Errorf("%s: got (%q, %v), want ok", tt.name, body, err)
		}
		if n := conns.N.Load() - beforeConns; n > 2 {
			t.Errorf("%s: the server accepted %d connections for %d requests, want at most 2", tt.name, n, requests.Load()-beforeReqs)
		}
	}
}

// A lying authorization server: metadata naming a plain-HTTP or userinfo
// token endpoint, or a token endpoint that redirects elsewhere. No client
// secret leaves for anywhere but the token endpoint, and the redirect is
// not followed.
func TestAttackLyingAuthorizationServer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		endpoint   func(issuer, api string) string // the metadata's token_endpoint
		wantTokens int64                           // requests to /token
	}{
		{"plain-HTTP token endpoint", func(issuer, _ string) string { return strings.Replace(issuer, "https:", "http:", 1) + "/token" }, 0},
		{"token endpoint with userinfo", func(issuer, _ string) string {
			return strings.Replace(issuer, "https://", "https://u:p@", 1) + "/token"
		}, 0},
		{"token endpoint redirects to the API host", func(issuer, _ string) string { return issuer + "/token" }, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tokens, steals atomic.Int64
			var srv *httptest.Server
			srv = testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				issuer, api := testutil.HostURL(srv, hostOther, ""), testutil.HostURL(srv, hostAPI, "")
				switch {
				case strings.HasPrefix(r.Host, hostAPI):
					steals.Add(1)
				case r.URL.Path == "/.well-known/oauth-authorization-server":
					fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q}`, issuer, tt.endpoint(issuer, api))
				case r.URL.Path == "/token":
					tokens.Add(1)
					http.Redirect(w, r, api+"/steal", http.StatusTemporaryRedirect)
				default:
					http.NotFound(w, r)
				}
			}))
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{
				ClientCredentials: &ClientCredentials{Issuer: testutil.HostURL(srv, hostOther, ""), ClientID: "c", ClientSecret: "s"},
				Hosts:             []string{hostAPI},
			}
			_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/v1"))
			if !errors.Is(err, ErrNoToken) {
				t.Errorf("got %v, want ErrNoToken", err)
			}
			if got := tokens.Load(); got != tt.wantTokens {
				t.Errorf("got %d token requests, want %d", got, tt.wantTokens)
			}
			if got := steals.Load(); got != 0 {
				t.Errorf("the API host got %d requests, want none", got)
			}
		})
	}
}

// A request whose Host header names another host than its URL, as
// httputil.ReverseProxy forwards an inbound request's Host by default,
// carries no token: a shared front end (a CDN, an ingress) routes by the
// Host header, so the token would reach whichever tenant it names (domain
// fronting).
func TestAttackHostHeaderCarriesToken(t *testing.T) {
	t.Parallel()
	var seen sync.Map // Host header → Authorization
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(strings.Split(r.Host, ":")[0], r.Header.Get("Authorization"))
	}))
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "host-header-token"}), Hosts: []string{hostAPI}}
	tr := newTestTransport(t, cfg)
	for _, host := range []string{hostAPI, hostOther} {
		req, _ := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/"), nil)
		req.Host = host
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("Host %s: %v", host, err)
		}
		resp.Body.Close()
	}
	if got, _ := seen.Load(hostAPI); got != "Bearer host-header-token" {
		t.Errorf("Host %s: got Authorization %q, want the token", hostAPI, got)
	}
	if got, _ := seen.Load(hostOther); got != "" {
		t.Errorf("Host %s on a URL for %s: got Authorization %q, want none", hostOther, hostAPI, got)
	}
}
