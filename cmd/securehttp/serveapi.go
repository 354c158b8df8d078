package main

// demo --serve's API: something for each of get's flags to be tried on.
// /v1/hello needs no token; /v1/me takes a bearer token, or a DPoP-bound
// one with its proof; /v1/dpop takes only the latter; /v1/echo answers any
// method with what it received; /v1/redirect/same-host and
// /v1/redirect/other-host send the client to /v1/echo, here or on
// localhost.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
)

// maxEcho bounds the body /v1/echo reads.
const maxEcho = 64 << 10

// api is the API of one demo --serve.
type api struct {
	base   string   // https://127.0.0.1:PORT
	names  []string // the host names of its certificate, which a proof's htu may name
	tokens *issuer
	dpop   *dpopChecker
}

func (a *api) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/hello", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello\n")
	})
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) { a.me(w, r, false) })
	mux.HandleFunc("GET /v1/dpop", func(w http.ResponseWriter, r *http.Request) { a.me(w, r, true) })
	mux.HandleFunc("/v1/echo", a.echo)
	mux.HandleFunc("/v1/redirect/same-host", func(w http.ResponseWriter, r *http.Request) {
		// 307 keeps the method and the body, which -L then sends again.
		http.Redirect(w, r, "/v1/echo", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/v1/redirect/other-host", func(w http.ResponseWriter, r *http.Request) {
		// localhost is the same server under another name: another host,
		// which gets no token.
		other := strings.Replace(a.base, "127.0.0.1", "localhost", 1)
		http.Redirect(w, r, other+"/v1/echo", http.StatusTemporaryRedirect)
	})
}

// me answers with the caller's identity; with dpopOnly, to a DPoP-bound
// token only.
func (a *api) me(w http.ResponseWriter, r *http.Request, dpopOnly bool) {
	claims, jkt, err := a.authenticate(r, dpopOnly)
	if err != nil {
		challenge := `DPoP algs="` + strings.Join(dpopAlgs(), " ") + `"`
		if !dpopOnly {
			challenge = `Bearer realm="securehttp demo", ` + challenge
		}
		var ce *challengeError
		if errors.As(err, &ce) {
			challenge = ce.scheme + ` error="` + ce.code + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body := map[string]string{"sub": claims.Subject, "jti": claims.ID}
	if jkt != "" && dpopOnly {
		body["jkt"] = jkt
	}
	json.NewEncoder(w).Encode(body)
}

// challengeError is a refused token, with the challenge to answer it.
type challengeError struct {
	scheme, code, msg string
}

func (e *challengeError) Error() string { return e.msg }

// authenticate checks the request's token as the API does: a bearer token
// not bound to a key, or (the only kind with dpopOnly) a DPoP-bound token
// with a proof of its key. It returns the token's claims and, for DPoP,
// the key's thumbprint.
func (a *api) authenticate(r *http.Request, dpopOnly bool) (*tokenClaims, string, error) {
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case raw == "":
		if dpopOnly {
			return nil, "", errors.New("this API needs a DPoP-bound token: get --dpop")
		}
		return nil, "", errors.New("no token: get --client-id, or --token-file")
	case strings.EqualFold(scheme, "Bearer") && dpopOnly:
		return nil, "", errors.New("this API needs a DPoP-bound token, not a bearer token: get --dpop")
	case strings.EqualFold(scheme, "Bearer"):
		claims, err := a.tokens.verify(raw)
		if err == nil && claims.Cnf != nil {
			err = errBoundToKey
		}
		if err != nil {
			return nil, "", &challengeError{"Bearer", "invalid_token", "invalid token"}
		}
		return claims, "", nil
	case strings.EqualFold(scheme, "DPoP"):
		claims, err := a.tokens.verify(raw)
		if err != nil || claims.Cnf == nil {
			return nil, "", &challengeError{"DPoP", "invalid_token", "invalid token, or one bound to no key"}
		}
		jkt, err := a.dpop.check(r, a.htu(r), raw)
		if err != nil {
			return nil, "", &challengeError{"DPoP", "invalid_dpop_proof", fmt.Sprintf("DPoP proof refused: %v", err)}
		}
		if jkt != claims.Cnf.JKT {
			return nil, "", &challengeError{"DPoP", "invalid_token", "the token is bound to another key"}
		}
		return claims, jkt, nil
	}
	return nil, "", errors.New("unknown authorization scheme")
}

// htu is the URL that a proof for r must name: the request's host, when it
// is one of the server's names (a client that reached it through
// --connect-to names it so), and its path. A proof made for another
// server is refused, whatever Host header comes with it.
func (a *api) htu(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !slices.Contains(a.names, strings.ToLower(host)) {
		return a.base + r.URL.EscapedPath()
	}
	return "https://" + r.Host + r.URL.EscapedPath()
}

// echo answers with what it received: the method, host, path, content type
// and body, and of the Authorization header its scheme alone, with the
// token's ID, scope and audience when it is one of ours; never a
// credential.
func (a *api) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEcho))
	if err != nil {
		http.Error(w, fmt.Sprintf("the body exceeds %d bytes", maxEcho), http.StatusRequestEntityTooLarge)
		return
	}
	type echoToken struct {
		JTI   string   `json:"jti"`
		Scope string   `json:"scope,omitempty"`
		Aud   []string `json:"aud"`
	}
	out := struct {
		Method        string     `json:"method"`
		Host          string     `json:"host"`
		Path          string     `json:"path"`
		ContentType   string     `json:"content_type"`
		Body          string     `json:"body"`
		Authorization string     `json:"authorization"`
		Token         *echoToken `json:"token,omitempty"`
	}{r.Method, r.Host, r.URL.Path, r.Header.Get("Content-Type"), string(body), "none", nil}
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, raw, _ := strings.Cut(auth, " ")
		out.Authorization = scheme
		if len(scheme) > 16 {
			out.Authorization = "(unknown)"
		}
		if claims, err := a.tokens.verify(raw); err == nil {
			out.Token = &echoToken{claims.ID, claims.Scope, claims.Audience}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // a form body reads a=1&b=2, not a=1\u0026b=2
	enc.Encode(out)
}
