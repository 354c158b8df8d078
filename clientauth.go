package securehttp

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/golang-jwt/jwt/v5"
)

// Client authentication at the token endpoint, the same for every grant:
// ClientCredentials' Key, ClientSecret or Assertion, or a client
// certificate.

// clientAuth is how a client authenticates at the token endpoint: with a
// key (private_key_jwt), a secret (client_secret_basic), an assertion made
// elsewhere, or its client certificate (tls_client_auth, none of these).
type clientAuth struct {
	id        string
	key       crypto.Signer
	keyID     string
	method    *signerMethod // with key only
	secret    string
	assertion Assertion
}

// checkClientAuth checks how c authenticates: exactly one of Key,
// ClientSecret and Assertion, or none of them with a client certificate.
func checkClientAuth(field string, c *ClientCredentials, haveClientCert bool) (*clientAuth, error) {
	a := &clientAuth{id: c.ClientID, key: c.Key, keyID: c.KeyID, secret: c.ClientSecret, assertion: c.Assertion}
	switch n := countTrue(c.Key != nil, c.ClientSecret != "", c.Assertion != nil); {
	case n > 1:
		return nil, &ConfigError{Field: field, Err: errors.New(
			"more than one client authentication: set one of Key, ClientSecret and Assertion")}
	case n == 0 && !haveClientCert:
		return nil, &ConfigError{Field: field, Err: errors.New(
			"no client authentication: set Key (private_key_jwt), ClientSecret (client_secret_basic), " +
				"Assertion, or Config.GetClientCertificate (tls_client_auth)")}
	}
	if c.Key != nil {
		m, err := signingMethodFor(c.Key)
		if err != nil {
			return nil, &ConfigError{Field: field + ".Key", Err: err}
		}
		a.method = m
	}
	return a, nil
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// basic sets client_secret_basic's header, with a secret.
func (a *clientAuth) basic(h http.Header) {
	if a.secret != "" {
		// RFC 6749 section 2.3.1: both parts form-encoded before Basic.
		creds := url.QueryEscape(a.id) + ":" + url.QueryEscape(a.secret)
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(creds)))
	}
}

// authenticate adds a's parameters to form: a new client assertion, or the
// client_id alone; client_secret_basic is in the request's header.
func (tc *tokenClient) authenticate(ctx context.Context, a *clientAuth, form url.Values) error {
	var assertion string
	var err error
	switch {
	case a.method != nil:
		assertion, err = tc.sign(a)
	case a.assertion != nil:
		assertion, err = callAssertion(ctx, "the client assertion", a.assertion)
	case a.secret != "":
		return nil
	}
	if err != nil {
		return err
	}
	form.Set("client_id", a.id)
	if assertion != "" {
		form.Set("client_assertion_type", assertionTypeJWTBearr)
		form.Set("client_assertion", assertion)
	}
	return nil
}

// callAssertion calls an Assertion of the user's and checks that it gave
// something to send.
func callAssertion(ctx context.Context, what string, a Assertion) (string, error) {
	s, err := a(ctx)
	switch {
	case err != nil:
		return "", wrap(what, err)
	case s == "":
		return "", fmt.Errorf("%s is empty", what)
	case len(s) > maxTokenLen:
		return "", fmt.Errorf("%s is longer than %d bytes", what, maxTokenLen)
	}
	return s, nil
}

// sign makes a client assertion (RFC 7523 section 3) with a's key and a
// fresh jti.
func (tc *tokenClient) sign(a *clientAuth) (string, error) {
	now := tc.t.now()
	aud := tc.issuer
	if aud == "" {
		aud = tc.tokenURL
	}
	claims := jwt.MapClaims{
		"iss": a.id,
		"sub": a.id,
		"aud": aud, // a string, not an array: rfc7523bis and FAPI 2.0
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
		"jti": randomID(),
	}
	t := jwt.NewWithClaims(a.method, claims)
	if a.keyID != "" {
		t.Header["kid"] = a.keyID
	}
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", wrap("signing the client assertion", err)
	}
	return s, nil
}
