package securehttp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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

// tokSourceFunc adapts a function to oauth2.TokenSource.
type tokSourceFunc func() (*oauth2.Token, error)

func (f tokSourceFunc) Token() (*oauth2.Token, error) { return f() }

func TestOAuth2Refresh(t *testing.T) {
	t.Parallel()
	errSource := errors.New("token endpoint down")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name    string
		src     oauth2.TokenSource
		ctx     context.Context
		want    string
		wantErr error // nil: no error, or anyErr
		anyErr  bool  // an error, whatever it is
	}{
		{"Bearer", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-1", TokenType: "Bearer"}), context.Background(), "at-1", nil, false},
		{"lower-case bearer", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-2", TokenType: "bearer"}), context.Background(), "at-2", nil, false},
		{"no type means Bearer", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-3"}), context.Background(), "at-3", nil, false},
		{"MAC token", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-4", TokenType: "mac"}), context.Background(), "", nil, true},
		{"DPoP token", oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-5", TokenType: "DPoP"}), context.Background(), "", nil, true},
		{"source fails", tokSourceFunc(func() (*oauth2.Token, error) { return nil, errSource }), context.Background(), "", errSource, false},
		{"cancelled context", tokSourceFunc(func() (*oauth2.Token, error) {
			t.Error("the source was called under a cancelled context")
			return nil, errSource
		}), cancelled, "", context.Canceled, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := OAuth2Refresh(tt.src)(tt.ctx)
			switch {
			case tt.anyErr:
				if err == nil {
					t.Fatal("got no error, want one")
				}
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got.Value != tt.want {
				t.Fatalf("got token %q, want %q", got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "at-") {
				t.Fatalf("error %q holds the access token", err)
			}
		})
	}
}

// OAuth2Refresh as Bearer.Refresh: the server receives the access token.
func TestOAuth2RefreshClient(t *testing.T) {
	t.Parallel()
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "oauth2-access-token", TokenType: "Bearer"})
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: OAuth2Refresh(src), Hosts: []string{hostAPI}}, nil)
	if got := e.tokMustGet(t); got != tokBearer("oauth2-access-token") {
		t.Fatalf("server got %q, want the access token", got)
	}
}

// OAuth2Refresh keeps the expiry, and a caching source that hands back the
// token a server just refused is reported once at Warn, with what to do.
func TestOAuth2RefreshExpiryAndReuseWarning(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	refresh := OAuth2Refresh(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "cached-token", TokenType: "Bearer", Expiry: exp}))
	tok, err := refresh(context.Background())
	if err != nil || tok.Value != "cached-token" || !tok.Expiry.Equal(exp) {
		t.Fatalf("got %v and %v, want the token with its expiry %v", tok, err, exp)
	}

	// The server refuses every token; the source keeps returning the same.
	e := tokSetup(t, tokNewClock(), &Bearer{Refresh: refresh, Hosts: []string{hostAPI}},
		func(w http.ResponseWriter, _ *http.Request, _ tokHit) { w.WriteHeader(http.StatusUnauthorized) })
	for i := range 3 {
		status, _, err := e.get("/")
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("request %d: got status %d and error %v, want 401", i, status, err)
		}
		tokWaitIdle(t, e.tr)
		e.clk.Add(2 * time.Minute) // past any refresh backoff
	}
	if n := strings.Count(e.logs.String(), "Refresh returned the token the server just refused"); n != 1 {
		t.Fatalf("got the reuse warning %d times, want once; log:\n%s", n, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "ReuseTokenSource") {
		t.Fatal("the warning does not say what to do")
	}
}

// A hostile or broken token endpoint behind OAuth2Refresh: x/oauth2 puts
// up to 1 MB of the error response, verbatim, in its RetrieveError's
// text. Through the adapter, errors and logs carry the server's OAuth
// error, cleaned and cut short, as with ClientCredentials, never the raw
// body (which may echo the request's client secret).
func TestOAuth2RefreshErrorBodyNotQuoted(t *testing.T) {
	t.Parallel()
	const marker = "client_secret=echoed-s3cret"
	for _, tt := range []struct {
		name, contentType, body string
		wantCode                string
	}{
		{"HTML page echoing the request", "text/html", "<pre>bad request: grant_type=client_credentials&" + marker + "\n\x1b[2J" + strings.Repeat("x", 512<<10) + "</pre>", "(no OAuth error in the response)"},
		{"OAuth error with a hostile description", "application/json", `{"error":"invalid_client","error_description":"bad\u001b[2J` + strings.Repeat("y", 512<<10) + `"}`, "invalid_client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, tt.body)
			}))
			httpClient := &http.Client{Transport: newTestTransport(t, testConfig(t))}
			cc := clientcredentials.Config{ClientID: "c", ClientSecret: "s", TokenURL: testutil.HostURL(srv, hostOther, "/token")}
			src := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, httpClient))
			cfg := testConfig(t)
			logger, logs := testutil.NewLogger()
			cfg.Logger = logger
			cfg.Bearer = &Bearer{Refresh: OAuth2Refresh(src), Hosts: []string{hostAPI}}
			_, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/v1"))
			if !errors.Is(err, ErrNoToken) {
				t.Fatalf("got %v, want ErrNoToken", err)
			}
			text := err.Error()
			if strings.Contains(text, "echoed-s3cret") || strings.Contains(logs.String(), "echoed-s3cret") {
				t.Errorf("the error or the log holds the response body's secret; error: %.300q", text)
			}
			if len(text) > 1024 || strings.ContainsAny(text, "\x1b\n") {
				t.Errorf("got an error of %d bytes (%.200q), want under 1 KiB without control characters", len(text), text)
			}
			oe, ok := errors.AsType[*OAuthError](err)
			if !ok || oe.StatusCode != http.StatusBadRequest || oe.Code != tt.wantCode {
				t.Errorf("got %v, want an *OAuthError 400 %s", oe, tt.wantCode)
			}
			if _, ok := errors.AsType[*oauth2.RetrieveError](err); !ok {
				t.Errorf("got %T, want the *oauth2.RetrieveError kept for errors.As", err)
			}
		})
	}
}

// The x/oauth2 client's own transport errors name the token URL: through
// OAuth2Refresh, without its query or userinfo.
func TestOAuth2RefreshURLErrorRedacted(t *testing.T) {
	t.Parallel()
	src := tokSourceFunc(func() (*oauth2.Token, error) {
		return nil, &url.Error{Op: "Post", URL: "https://u:pw-s3cret@as.test/token?key=q-s3cret", Err: io.ErrUnexpectedEOF}
	})
	_, err := OAuth2Refresh(src)(context.Background())
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("got %v, want an error without the URL's userinfo and query", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
}
