package main

// demo --serve's authorization server: RFC 8414 metadata and a token
// endpoint for the client credentials grant, where the client
// authenticates with its secret (client_secret_basic) or a key
// (private_key_jwt), and a request with a DPoP proof gets a token bound to
// the proof's key.

import (
	"crypto/ecdsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// maxAssertionLife is the longest a client assertion may be valid.
	maxAssertionLife = 5 * time.Minute
	// maxTokenRequest bounds a token request's form.
	maxTokenRequest = 64 << 10
	jwtBearerType   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// authServer is the authorization server of one demo --serve.
type authServer struct {
	issuer    string // the server's https URL, as its metadata names it
	tokenURL  string
	clientID  string
	secret    string
	clientKey *ecdsa.PublicKey // private_key_jwt: the key of the client's assertions
	tokens    *issuer
	dpop      *dpopChecker
	seen      *onceCache // assertions' jti
	now       func() time.Time
}

// metadata serves the RFC 8414 document that --issuer discovers.
func (a *authServer) metadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                a.issuer,
		"token_endpoint":                        a.tokenURL,
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"ES256"},
		"dpop_signing_alg_values_supported":                dpopAlgs(),
	})
}

// token is the token endpoint.
func (a *authServer) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the form does not parse")
		return
	}
	form := r.PostForm
	if form.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "this server knows client_credentials only")
		return
	}
	id, secret, basic := r.BasicAuth()
	assertion := form.Get("client_assertion")
	switch {
	case basic && assertion != "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "one client authentication at a time")
		return
	case basic:
		// RFC 6749 section 2.3.1: both are form-encoded first.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if id != a.clientID || subtle.ConstantTimeCompare([]byte(secret), []byte(a.secret)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="securehttp demo"`)
			oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
			return
		}
	case assertion != "":
		if err := a.checkAssertion(form); err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client assertion refused")
			return
		}
	default:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "no client authentication")
		return
	}
	g := grant{scope: strings.Join(strings.Fields(form.Get("scope")), " "), resources: form["resource"]}
	for _, res := range g.resources {
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" {
			oauthError(w, http.StatusBadRequest, "invalid_target", "a resource is an absolute URI without a fragment")
			return
		}
	}
	if len(r.Header.Values("DPoP")) > 0 {
		jkt, err := a.dpop.check(r, a.tokenURL, "")
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", err.Error())
			return
		}
		g.jkt = jkt
	}
	a.tokens.issue(w, g)
}

// checkAssertion verifies a private_key_jwt client assertion (RFC 7523):
// signed by the client's key, issued by and about the client, for this
// server (its issuer or its token endpoint), short-lived, and used once.
func (a *authServer) checkAssertion(form url.Values) error {
	if form.Get("client_assertion_type") != jwtBearerType {
		return errors.New("unknown client_assertion_type")
	}
	if id := form.Get("client_id"); id != "" && id != a.clientID {
		return errors.New("client_id is not the assertion's")
	}
	var c jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(form.Get("client_assertion"), &c, func(*jwt.Token) (any, error) { return a.clientKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithIssuer(a.clientID), jwt.WithSubject(a.clientID),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(a.now))
	if err != nil {
		return err
	}
	if !slices.Contains(c.Audience, a.issuer) && !slices.Contains(c.Audience, a.tokenURL) {
		return errors.New("the assertion is for another audience")
	}
	if c.ExpiresAt.Sub(a.now()) > maxAssertionLife {
		return errors.New("the assertion is valid for too long")
	}
	if c.ID == "" || len(c.ID) > 256 || !a.seen.first("assertion "+c.ID, c.ExpiresAt.Time) {
		return errors.New("the assertion has no jti, or one used before")
	}
	return nil
}

// oauthError writes an OAuth 2.0 error response (RFC 6749 section 5.2).
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
