package securehttp

// Reading a token: its syntax, and its expiry and binding when it is a JWT.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// parse checks tok's syntax and reads its expiry: the earlier of tok.Expiry
// and a JWT's exp. Errors never contain the token or its claims.
func (ts *tokenSource) parse(in Token, now time.Time) (*token, error) {
	raw := in.Value
	if raw == "" {
		return nil, errors.New("empty token")
	}
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("token of %d bytes exceeds the %d-byte limit", len(raw), maxTokenLen)
	}
	if !isToken68(raw) {
		return nil, errors.New("token has characters not allowed in a bearer token (RFC 6750 b64token)")
	}
	tok := &token{raw: raw, header: []string{ts.scheme + " " + raw}}
	tok.headers = http.Header{"Authorization": tok.header}
	if ts.scheme == "DPoP" {
		tok.ath = tokenHash(raw)
	}
	claims, err := ts.claims(raw)
	switch {
	case err != nil && ts.keyfunc != nil:
		return nil, err
	case err != nil:
		claims = nil // not a JWT: opaque
	}
	tok.exp = in.Expiry
	var iat time.Time
	if claims != nil && claims.Cnf != nil {
		if err := ts.checkCnf(claims.Cnf.JKT, claims.Cnf.X5t); err != nil {
			return nil, err
		}
	}
	if claims != nil {
		if claims.ExpiresAt != nil && (tok.exp.IsZero() || claims.ExpiresAt.Before(tok.exp)) {
			tok.exp = claims.ExpiresAt.Time
		}
		if claims.NotBefore != nil {
			tok.nbf = claims.NotBefore.Time
		}
		if claims.IssuedAt != nil {
			iat = claims.IssuedAt.Time
		}
	}
	if !tok.exp.IsZero() {
		start := now
		if !iat.IsZero() && iat.Before(tok.exp) {
			start = iat
		}
		tok.lifetime = max(tok.exp.Sub(start), 0)
	}
	return tok, nil
}

// checkCnf refuses a token bound (RFC 7800 cnf) to a key or a certificate
// that this process does not hold. Binding is part of a token's identity: a
// token bound to another DPoP key or client certificate (saved in a shared
// store by a process with its own, say) can only be refused by the server,
// and a request whose body cannot be replayed would fail with it. A
// DPoP-bound token sent as a bearer token must be refused too (RFC 9449
// section 7.2). The certificate is checked only when it can be named (see
// certState.thumbprint).
func (ts *tokenSource) checkCnf(jkt, x5t string) error {
	if jkt != "" && jkt != ts.jkt {
		if ts.jkt == "" {
			return errors.New("token is bound to a DPoP key (cnf.jkt): set Bearer.DPoP to send it")
		}
		return errors.New("token is bound (cnf.jkt) to another DPoP key")
	}
	if x5t == "" {
		return nil
	}
	if ts.cert == nil {
		return errors.New(`token is bound to a client certificate (cnf["x5t#S256"]): set Config.GetClientCertificate to send it`)
	}
	if ours, ok := ts.cert(); ok && x5t != ours {
		return errors.New(`token is bound (cnf["x5t#S256"]) to another client certificate`)
	}
	return nil
}

// claims decodes raw as a JWT, verifying it when a Keyfunc is set. The
// error names what is wrong without quoting the token.
func (ts *tokenSource) claims(raw string) (*tokenClaims, error) {
	if strings.Count(raw, ".") != 2 {
		if ts.keyfunc != nil {
			return nil, errors.New("token is not a JWT, so Keyfunc cannot verify it")
		}
		return nil, errors.New("not a JWT")
	}
	var claims tokenClaims
	opts := []jwt.ParserOption{jwt.WithoutClaimsValidation()}
	if len(ts.methods) > 0 {
		opts = append(opts, jwt.WithValidMethods(ts.methods))
	}
	parser := jwt.NewParser(opts...)
	var err error
	if ts.keyfunc != nil {
		_, err = parser.ParseWithClaims(raw, &claims, ts.checkedKeyfunc)
	} else {
		_, _, err = parser.ParseUnverified(raw, &claims)
	}
	if err != nil {
		return nil, jwtErrorKind(err)
	}
	return &claims, nil
}

// tokenClaims are the claims a token source reads: the registered ones for
// the token's lifetime, and the confirmation of a sender-constrained token
// (RFC 7800), whose DPoP key thumbprint (RFC 9449) and client certificate
// thumbprint (RFC 8705) must be ours.
type tokenClaims struct {
	jwt.RegisteredClaims
	Cnf *struct {
		JKT string `json:"jkt"`
		X5t string `json:"x5t#S256"`
	} `json:"cnf,omitempty"`
}

// checkedKeyfunc calls Keyfunc and refuses an algorithm that does not fit
// the key it returns, so that a public key is never used as an HMAC secret
// (algorithm confusion) and "none" never passes.
func (ts *tokenSource) checkedKeyfunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if strings.EqualFold(alg, "none") {
		return nil, errors.New(`the "none" algorithm is refused`)
	}
	key, err := ts.keyfunc(t)
	if err != nil || len(ts.methods) > 0 {
		return key, err
	}
	if !keyFitsAlg(key, alg) {
		return nil, fmt.Errorf("algorithm %s does not fit the key Keyfunc returned (%T); list it in Bearer.ValidMethods", alg, key)
	}
	return key, nil
}

// jwtErrorKind maps a jwt/v5 error to a message of our own: theirs may
// quote claim values or bytes of the token.
func jwtErrorKind(err error) error {
	kinds := []struct {
		target error
		msg    string
	}{
		{jwt.ErrTokenMalformed, "malformed JWT"},
		{jwt.ErrTokenUnverifiable, "JWT cannot be verified"},
		{jwt.ErrTokenSignatureInvalid, "JWT signature is invalid"},
		{jwt.ErrTokenInvalidClaims, "JWT claims are invalid"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.target) {
			return &jwtError{msg: k.msg, kind: k.target}
		}
	}
	return &jwtError{msg: "JWT refused", kind: jwt.ErrTokenUnverifiable}
}

// jwtError is a JWT failure that matches jwt/v5's error kinds with
// errors.Is, without carrying their text.
type jwtError struct {
	msg  string
	kind error
}

func (e *jwtError) Error() string { return e.msg }
func (e *jwtError) Unwrap() error { return e.kind }

// isToken68 reports whether s is a b64token (RFC 6750 section 2.1), so it can
// go into a header without injecting anything.
func isToken68(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
