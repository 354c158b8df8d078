package securehttp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/securehttp/securehttp/internal/testutil"
)

// Through OAuth2Refresh too, a token endpoint that quotes the client
// secret it received in its error response does not get it into the
// *OAuthError or the error text: the adapter reads the credentials from the
// request x/oauth2 sent, whichever way it sent them.
func TestOAuth2RefreshRedactsEchoedSecret(t *testing.T) {
	t.Parallel()
	secret := "s3cret/" + rand.Text()
	for _, tt := range []struct {
		name  string
		style oauth2.AuthStyle
	}{
		{"secret in the Basic header", oauth2.AuthStyleInHeader},
		{"secret in the form", oauth2.AuthStyleInParams},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			as := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client",
					"error_description": "no client with secret " + secret,
					"error_uri":         "https://as.test/help?s=" + url.QueryEscape(secret)})
			}))
			httpClient := &http.Client{Transport: newTestTransport(t, testConfig(t))}
			cc := clientcredentials.Config{ClientID: "c", ClientSecret: secret, TokenURL: testutil.HostURL(as, hostOther, "/token"),
				AuthStyle: tt.style}
			src := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, httpClient))
			_, err := OAuth2Refresh(src)(context.Background())
			oe, ok := errors.AsType[*OAuthError](err)
			if !ok {
				t.Fatalf("got %v, want an *OAuthError", err)
			}
			for _, text := range []string{oe.Description, oe.URI, err.Error()} {
				if run := leakedRun(text, 6, secret, url.QueryEscape(secret)); run != "" {
					t.Fatalf("got %q, which holds %q of the client secret", text, run)
				}
			}
			if oe.Description != echoRedacted || oe.URI != echoRedacted {
				t.Fatalf("got description %q and URI %q, want both %q", oe.Description, oe.URI, echoRedacted)
			}
			if oe.Code != "invalid_client" {
				t.Fatalf("got code %q, want invalid_client", oe.Code)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error %q shows the secret", err)
			}
		})
	}
}
