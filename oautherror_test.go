package securehttp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/testutil"
)

// echoSeen is what a token endpoint received, for a server that quotes it
// back in its error response.
type echoSeen struct {
	auth, proof, assertion string
}

// segment returns the i-th dot-separated part of a JWT.
func segment(jwtString string, i int) string {
	parts := strings.Split(jwtString, ".")
	if i >= len(parts) {
		return ""
	}
	return parts[i]
}

// leakedRun returns the first run of at least n bytes of any of creds that
// appears in text, or "".
func leakedRun(text string, n int, creds ...string) string {
	for _, c := range creds {
		w := min(n, len(c))
		for i := 0; w > 0 && i+w <= len(c); i++ {
			if strings.Contains(text, c[i:i+w]) {
				return c[i : i+w]
			}
		}
	}
	return ""
}

// An authorization server that quotes what it received in its error
// response (error, error_description, error_uri) does not get the client
// secret, the client assertion, the DPoP proof or the key into the
// *OAuthError, the error text or the log, whole, encoded, in part, or cut
// short by the length limit.
func TestOAuthErrorRedactsEchoedCredentials(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	keyD := base64.RawURLEncoding.EncodeToString(d)
	secret := "s3cret/" + rand.Text() + " é+&"
	const clientID = "svc client:1"
	// The Basic credentials' base64 from the secret on: "svc+client%3A1:" is
	// 15 bytes, whose base64 is the first 20 characters.
	basicSecret := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)))[20:]
	filler := strings.Repeat("~", maxDescription-6)

	type echo func(s echoSeen) (code, desc, uri string)
	for _, tt := range []struct {
		name     string
		auth     string // "basic", "jwt" or "dpop" (client_secret_basic with DPoP)
		echo     echo
		redacted bool // false: the text is harmless and must be kept
	}{
		{"secret raw", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", "wrong secret " + secret, ""
		}, true},
		{"secret url-encoded", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", "got " + url.QueryEscape(secret), ""
		}, true},
		{"secret path-encoded", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", "got " + url.PathEscape(secret), ""
		}, true},
		{"Basic header", "basic", func(s echoSeen) (string, string, string) {
			return "invalid_client", "bad header " + s.auth, ""
		}, true},
		{"Basic header cut", "basic", func(s echoSeen) (string, string, string) {
			return "invalid_client", "bad header ..." + s.auth[len(s.auth)-12:], ""
		}, true},
		{"secret truncated by the length limit", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", filler + secret, ""
		}, true},
		{"secret prefix", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", "secret starts " + secret[:10] + ", which is wrong", ""
		}, true},
		{"secret in error_uri", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", "see the link", "https://as.test/help?secret=" + url.QueryEscape(secret)
		}, true},
		{"secret as the error code", "basic", func(echoSeen) (string, string, string) {
			return secret, "", ""
		}, true},
		{"assertion whole", "jwt", func(s echoSeen) (string, string, string) {
			return "invalid_client", "bad assertion " + s.assertion, ""
		}, true},
		{"assertion signature", "jwt", func(s echoSeen) (string, string, string) {
			return "invalid_client", "signature " + segment(s.assertion, 2) + " does not verify", ""
		}, true},
		{"assertion payload in error_uri", "jwt", func(s echoSeen) (string, string, string) {
			return "invalid_client", "", "https://as.test/why?c=" + segment(s.assertion, 1)
		}, true},
		{"DPoP proof", "dpop", func(s echoSeen) (string, string, string) {
			return "invalid_dpop_proof", "proof " + s.proof, ""
		}, true},
		{"DPoP proof signature truncated", "dpop", func(s echoSeen) (string, string, string) {
			return "invalid_dpop_proof", filler + segment(s.proof, 2), ""
		}, true},
		{"private key", "jwt", func(echoSeen) (string, string, string) {
			return "invalid_client", "key d=" + keyD, ""
		}, true},
		{"harmless text kept", "basic", func(echoSeen) (string, string, string) {
			return "invalid_client", "the client is disabled", "https://as.test/help"
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := make(chan echoSeen, 4)
			as := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				s := echoSeen{auth: r.Header.Get("Authorization"), proof: r.Header.Get("DPoP"),
					assertion: r.PostForm.Get("client_assertion")}
				select {
				case seen <- s:
				default:
				}
				code, desc, uri := tt.echo(s)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc, "error_uri": uri})
			}))
			cc := ClientCredentials{TokenURL: testutil.HostURL(as, hostOther, "/token"), ClientID: clientID}
			if tt.auth == "jwt" {
				cc.Key = key
			} else {
				cc.ClientSecret = secret
			}
			cfg := testConfig(t)
			logger, logs := testutil.NewLogger()
			cfg.Logger = logger
			cfg.Bearer = &Bearer{ClientCredentials: &cc, Hosts: []string{hostAPI}, RefreshTimeout: 5 * time.Second}
			if tt.auth == "dpop" {
				cfg.Bearer.DPoP = &DPoP{Key: key}
			}
			c := &http.Client{Transport: newTestTransport(t, cfg)}
			_, err := c.Get("https://" + hostAPI + ":1/never")
			var oe *OAuthError
			if !errors.As(err, &oe) {
				t.Fatalf("got error %v, want an *OAuthError", err)
			}
			s := <-seen
			code, desc, uri := tt.echo(s)
			if !tt.redacted {
				if oe.Code != code || oe.Description != desc || oe.URI != uri {
					t.Fatalf("got %q %q %q, want the server's %q %q %q", oe.Code, oe.Description, oe.URI, code, desc, uri)
				}
				return
			}
			forms := []string{s.assertion, s.proof, keyD}
			if tt.auth != "jwt" {
				forms = append(forms, secret, url.QueryEscape(secret), url.PathEscape(secret), basicSecret)
			}
			for _, where := range []struct{ name, text string }{
				{"Code", oe.Code}, {"Description", oe.Description}, {"URI", oe.URI},
				{"the error", err.Error()}, {"the log", logs.String()},
			} {
				if run := leakedRun(where.text, 6, forms...); run != "" {
					t.Fatalf("%s holds %q of a credential: %q", where.name, run, where.text)
				}
			}
			// The field that held the echo says so, rather than vanishing.
			if oe.Code != echoRedacted && oe.Description != echoRedacted && oe.URI != echoRedacted {
				t.Fatalf("got %q %q %q, want one of them to be %q", oe.Code, oe.Description, oe.URI, echoRedacted)
			}
		})
	}
}
