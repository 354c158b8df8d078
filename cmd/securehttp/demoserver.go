package main

// The demo's servers: the API, the JWT issuer, and what they record for the
// steps to check.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// me answers with the caller's identity, for a valid token only.
func (d *demo) me(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="demo"`)
		http.Error(w, "no token", http.StatusUnauthorized)
		return
	}
	claims, err := d.issuer.verify(raw)
	if err == nil && claims.Cnf != nil {
		err = errBoundToKey
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="demo", error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"sub": claims.Subject, "jti": claims.ID})
}

// issuer mints short-lived HS256 JWTs for the demo API and keeps the list of
// those it revoked.
type issuer struct {
	key      []byte
	lifetime time.Duration // the shortest life of a token

	mu      sync.Mutex
	n       int
	last    minted
	revoked map[string]bool
}

// minted names a token by its jti, which the demo prints instead of the
// token.
type minted struct {
	id       string
	iat, exp time.Time
}

func newIssuer(lifetime time.Duration) (*issuer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &issuer{key: key, lifetime: lifetime, revoked: map[string]bool{}}, nil
}

// tokenClaims are the claims of the demo's tokens.
type tokenClaims struct {
	jwt.RegisteredClaims
	Scope string        `json:"scope,omitempty"`
	Cnf   *confirmation `json:"cnf,omitempty"`
}

// confirmation binds a token to the DPoP key of this thumbprint (RFC 9449
// section 6.1).
type confirmation struct {
	JKT string `json:"jkt"`
}

// grant is what a token request asked for and was given.
type grant struct {
	scope     string   // space-separated
	resources []string // RFC 8707 resource indicators, added to the audience
	jkt       string   // the DPoP key the token is bound to, if any
}

// errBoundToKey refuses a DPoP-bound token presented as a bearer token: it
// is good only with a proof of its key.
var errBoundToKey = errors.New("token bound to a DPoP key, presented without a proof")

func (is *issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	is.issue(w, grant{})
}

// issue answers a token request with a new token for g.
func (is *issuer) issue(w http.ResponseWriter, g grant) {
	now := time.Now()
	raw, m, err := is.mint(now, g)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	resp := map[string]any{
		"access_token": raw,
		"token_type":   "Bearer",
		"expires_in":   int(m.exp.Sub(now).Seconds()),
	}
	if g.jkt != "" {
		resp["token_type"] = "DPoP"
	}
	if g.scope != "" {
		resp["scope"] = g.scope
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

func (is *issuer) mint(now time.Time, g grant) (string, minted, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.n++
	// NumericDates are whole seconds (jwt.TimePrecision), so the token
	// expires at the first whole second at least is.lifetime from now.
	exp := now.Add(is.lifetime).Add(time.Second - 1).Truncate(time.Second)
	m := minted{id: fmt.Sprintf("tok-%d", is.n), iat: now, exp: exp}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuerURL,
			Subject:   "demo-user",
			Audience:  append(jwt.ClaimStrings{hostAPI}, g.resources...),
			ID:        m.id,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Scope: g.scope,
	}
	if g.jkt != "" {
		claims.Cnf = &confirmation{JKT: g.jkt}
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(is.key)
	if err != nil {
		return "", minted{}, err
	}
	is.last = m
	return raw, m, nil
}

var errRevoked = errors.New("token revoked")

// verify checks a token as the API would: signature, algorithm, issuer,
// audience, expiry, and the revocation list.
func (is *issuer) verify(raw string) (*tokenClaims, error) {
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return is.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuerURL), jwt.WithAudience(hostAPI), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.revoked[claims.ID] {
		return nil, errRevoked
	}
	return &claims, nil
}

// tokenID returns the jti of a token for the server's log, or "" when raw
// is no token of ours.
func (is *issuer) tokenID(raw string) string {
	claims, err := is.verify(raw)
	if errors.Is(err, errRevoked) || errors.Is(err, jwt.ErrTokenExpired) {
		// Still ours: name it.
		var c jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err == nil {
			return c.ID
		}
	}
	if err != nil {
		return ""
	}
	return claims.ID
}

func (is *issuer) latest() minted {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.last
}

func (is *issuer) revoke(id string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.revoked[id] = true
}

// seenRequest is what the API server saw of one request.
type seenRequest struct {
	host   string
	path   string
	auth   bool   // an Authorization header was present
	token  string // the jti of the bearer token, if it is one of ours
	status int
}

func (s seenRequest) String() string {
	return fmt.Sprintf("{%s%s auth=%t token=%q status=%d}", s.host, s.path, s.auth, s.token, s.status)
}

// requestLog records the requests a server answered, in order.
type requestLog struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (l *requestLog) record(is *issuer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		seen := seenRequest{
			host:  host,
			path:  r.URL.Path,
			auth:  r.Header.Get("Authorization") != "",
			token: is.tokenID(raw),
		}
		sw := &statusWriter{ResponseWriter: w, log: func(status int) {
			seen.status = status
			l.mu.Lock()
			defer l.mu.Unlock()
			l.reqs = append(l.reqs, seen)
		}}
		h.ServeHTTP(sw, r)
		sw.logOnce(http.StatusOK)
	})
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// since returns the requests recorded after the first n.
func (l *requestLog) since(n int) []seenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenRequest(nil), l.reqs[n:]...)
}

// statusWriter calls log with the response status before the response can
// reach the client, so that a step that has its response finds every
// request it caused in the log.
type statusWriter struct {
	http.ResponseWriter
	log    func(status int)
	logged bool
}

func (w *statusWriter) logOnce(status int) {
	if !w.logged {
		w.logged = true
		w.log(status)
	}
}

func (w *statusWriter) WriteHeader(status int) {
	w.logOnce(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.logOnce(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// loopback dials the demo's host names on their loopback servers and
// refuses every other address, so that the demo cannot reach the network.
type loopback struct {
	addrs map[string]string // "api.demo.test:443" → "127.0.0.1:port"
	dials atomic.Int64      // dial attempts, refused ones included
}

func (l *loopback) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	l.dials.Add(1)
	target, ok := l.addrs[addr]
	if !ok {
		return nil, fmt.Errorf("securehttp demo: %s is not a demo server; the demo dials 127.0.0.1 only", addr)
	}
	var dialer net.Dialer
	return dialer.DialContext(ctx, network, target)
}
