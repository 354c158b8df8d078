package securehttp

import (
	"context"
	"errors"
	"github.com/securehttp/securehttp/internal/testutil"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// A token exchange sends the subject token with its type (a JWT unless
// said otherwise), the actor token with its type, each audience and
// resource, the scopes, the requested type (an access token unless said
// otherwise), and the client's authentication.
func TestTokenExchangeSendsRFC8693Parameters(t *testing.T) {
	t.Parallel()
	subject := func(context.Context) (string, error) { return "subject.jwt.value", nil }
	actor := func(context.Context) (string, error) { return "actor.jwt.value", nil }
	for _, tt := range []struct {
		name string
		te   TokenExchange
		want url.Values
	}{
		{"defaults", TokenExchange{SubjectToken: subject}, url.Values{
			"grant_type": {grantTypeTokenExchange}, "subject_token": {"subject.jwt.value"}, "subject_token_type": {tokenTypeJWT},
			"requested_token_type": {tokenTypeAccess}}},
		{"everything", TokenExchange{SubjectToken: subject, SubjectTokenType: tokenTypeIDToken, ActorToken: actor,
			ActorTokenType: tokenTypeAccess, Audience: []string{"billing", "ledger"}, Resource: []string{"https://api.test/"},
			Scopes: []string{"read", "write"}, RequestedTokenType: tokenTypeJWT}, url.Values{
			"grant_type": {grantTypeTokenExchange}, "subject_token": {"subject.jwt.value"}, "subject_token_type": {tokenTypeIDToken},
			"actor_token": {"actor.jwt.value"}, "actor_token_type": {tokenTypeAccess}, "audience": {"billing", "ledger"},
			"resource": {"https://api.test/"}, "scope": {"read write"}, "requested_token_type": {tokenTypeJWT}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newGrantServer(t)
			te := tt.te
			te.TokenURL = s.tokenURL()
			te.Client = &ClientCredentials{ClientID: "app", ClientSecret: "s3cret"}
			cfg := testConfig(t)
			cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, TokenExchange: &te}
			if err := s.get(t, cfg); err != nil {
				t.Fatal(err)
			}
			got := s.form(0)
			for k, v := range tt.want {
				if !slices.Equal(got[k], v) {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
			for k := range got {
				if _, ok := tt.want[k]; !ok {
					t.Errorf("got parameter %s=%q, want none", k, got[k])
				}
			}
			s.mu.Lock()
			h := s.headers[0]
			s.mu.Unlock()
			if id, secret, ok := (&http.Request{Header: h}).BasicAuth(); !ok || id != "app" || secret != "s3cret" {
				t.Errorf("got Basic %q:%q, want the client's", id, secret)
			}
		})
	}
}

// The answer to a token exchange must name the type of token it issued,
// the one asked for (an access token unless said otherwise). A token that
// is not an access token may come with token_type N_A (RFC 8693 section
// 2.2.1); it is sent as a bearer token all the same, as asked, but never
// as a DPoP-bound one.
func TestTokenExchangeChecksIssuedTokenType(t *testing.T) {
	t.Parallel()
	const ok = ""
	for _, tt := range []struct {
		name      string
		requested string
		dpop      bool
		body      string
		wantErr   string
	}{
		{"access token", "", false, `{"access_token":"t","token_type":"Bearer","issued_token_type":"` + tokenTypeAccess + `"}`, ok},
		{"access token asked for", tokenTypeAccess, false, `{"access_token":"t","token_type":"bearer","issued_token_type":"` + tokenTypeAccess + `"}`, ok},
		{"no issued_token_type", "", false, `{"access_token":"t","token_type":"Bearer"}`, "no issued_token_type"},
		{"another type than asked", "", false, `{"access_token":"t","token_type":"Bearer","issued_token_type":"` + tokenTypeJWT + `"}`, "issued_token_type"},
		{"an access token as N_A", "", false, `{"access_token":"t","token_type":"N_A","issued_token_type":"` + tokenTypeAccess + `"}`, "token_type"},
		{"a JWT as N_A", tokenTypeJWT, false, `{"access_token":"t","token_type":"N_A","issued_token_type":"` + tokenTypeJWT + `"}`, ok},
		{"a JWT as Bearer", tokenTypeJWT, false, `{"access_token":"t","token_type":"Bearer","issued_token_type":"` + tokenTypeJWT + `"}`, ok},
		{"an ID token as N_A", tokenTypeIDToken, false, `{"access_token":"t","token_type":"N_A","issued_token_type":"` + tokenTypeIDToken + `"}`, ok},
		{"an access token for a JWT", tokenTypeJWT, false, `{"access_token":"t","token_type":"Bearer","issued_token_type":"` + tokenTypeAccess + `"}`, "issued_token_type"},
		{"N_A under DPoP", tokenTypeJWT, true, `{"access_token":"t","token_type":"N_A","issued_token_type":"` + tokenTypeJWT + `"}`, "token_type"},
		{"DPoP under DPoP", tokenTypeJWT, true, `{"access_token":"t","token_type":"DPoP","issued_token_type":"` + tokenTypeJWT + `"}`, ok},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := answer{tokenType: "Bearer", issued: tt.requested}
			if want.issued == "" {
				want.issued = tokenTypeAccess
			}
			if tt.dpop {
				want.tokenType = "DPoP"
			}
			tok, err := parseTokenResponse([]byte(tt.body), time.Now(), want, nil)
			if tt.wantErr == ok {
				if err != nil || tok.Value != "t" {
					t.Fatalf("got %v, want the token", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}

// A token exchange whose answer issues another type of token fails the
// refresh: the request is not sent with it.
func TestTokenExchangeRefusesAnotherIssuedType(t *testing.T) {
	t.Parallel()
	s := newGrantServer(t)
	s.answer = func(int64, url.Values) (int, string) {
		return http.StatusOK, `{"access_token":"rt","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token"}`
	}
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, TokenExchange: &TokenExchange{TokenURL: s.tokenURL(),
		SubjectToken: func(context.Context) (string, error) { return "subject", nil }}}
	c := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 10 * time.Second}
	_, err := c.Get(testutil.HostURL(s.srv, hostAPI, "/v1"))
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "issued_token_type") {
		t.Fatalf("got %v, want ErrNoToken about the issued_token_type", err)
	}
}

// Every misconfigured TokenExchange is a *ConfigError that names the field.
func TestTokenExchangeConfigErrors(t *testing.T) {
	t.Parallel()
	a := func(context.Context) (string, error) { return "x", nil }
	te := func(e TokenExchange) Bearer {
		if e.Issuer == "" && e.TokenURL == "" {
			e.Issuer = "https://as.test"
		}
		return Bearer{TokenExchange: &e}
	}
	for _, tt := range []struct {
		name, field string
		b           Bearer
	}{
		{"no subject token", "Bearer.TokenExchange.SubjectToken", te(TokenExchange{})},
		{"no issuer", "Bearer.TokenExchange.Issuer", Bearer{TokenExchange: &TokenExchange{SubjectToken: a}}},
		{"subject token type not a URI", "Bearer.TokenExchange.SubjectTokenType", te(TokenExchange{SubjectToken: a, SubjectTokenType: "jwt"})},
		{"actor token without type", "Bearer.TokenExchange.ActorTokenType", te(TokenExchange{SubjectToken: a, ActorToken: a})},
		{"actor type without token", "Bearer.TokenExchange.ActorTokenType", te(TokenExchange{SubjectToken: a, ActorTokenType: tokenTypeJWT})},
		{"actor token type not a URI", "Bearer.TokenExchange.ActorTokenType", te(TokenExchange{SubjectToken: a, ActorToken: a, ActorTokenType: "access"})},
		{"refresh token requested", "Bearer.TokenExchange.RequestedTokenType", te(TokenExchange{SubjectToken: a,
			RequestedTokenType: "urn:ietf:params:oauth:token-type:refresh_token"})},
		{"empty audience", "Bearer.TokenExchange.Audience[1]", te(TokenExchange{SubjectToken: a, Audience: []string{"a", ""}})},
		{"bad resource", "Bearer.TokenExchange.Resource[0]", te(TokenExchange{SubjectToken: a, Resource: []string{"https://api.test/#f"}})},
		{"bad scope", "Bearer.TokenExchange.Scopes[0]", te(TokenExchange{SubjectToken: a, Scopes: []string{`"`}})},
		{"client with resource", "Bearer.TokenExchange.Client.Resource", te(TokenExchange{SubjectToken: a,
			Client: &ClientCredentials{ClientID: "c", ClientSecret: "s", Resource: []string{"https://api.test/"}}})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.b
			b.Hosts = []string{hostAPI}
			_, err := NewClient(Config{Bearer: &b})
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tt.field {
				t.Fatalf("got %v, want a *ConfigError for %s", err, tt.field)
			}
		})
	}
}

// TestTokenExchangeIDTokenWithDPoPRefused: an ID token answers with
// token_type N_A, which DPoP refuses at every refresh: the combination is a
// ConfigError from NewClient, before any request.
func TestTokenExchangeIDTokenWithDPoPRefused(t *testing.T) {
	t.Parallel()
	_, err := newTransport(Config{Bearer: &Bearer{Hosts: []string{hostAPI}, DPoP: &DPoP{},
		TokenExchange: &TokenExchange{TokenURL: "https://as.test/token", RequestedTokenType: tokenTypeIDToken,
			SubjectToken: func(context.Context) (string, error) { return "x", nil },
			Client:       &ClientCredentials{ClientID: "c", ClientSecret: "s"}}}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "Bearer.TokenExchange.RequestedTokenType" {
		t.Fatalf("got %v, want a *ConfigError for RequestedTokenType", err)
	}
}
