package securehttp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

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
