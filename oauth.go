package securehttp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientCredentials obtains tokens with the OAuth 2.0 client credentials
// grant (RFC 6749 section 4.4), for a service calling an API as itself. The
// client authenticates with exactly one of Key (private_key_jwt, RFC 7523),
// ClientSecret (client_secret_basic) and Assertion, or with none of them by
// tls_client_auth (RFC 8705) with Config.GetClientCertificate. Token
// requests go through the same hardened transport (roots, pins,
// certificate, egress), never carry a token, and are bounded by
// Bearer.RefreshTimeout.
type ClientCredentials struct {
	// Issuer is the authorization server's issuer, an https URL whose
	// metadata (RFC 8414, then OpenID Connect Discovery) must name it
	// exactly. With a client certificate, its mtls_endpoint_aliases
	// token_endpoint is used when it has one.
	Issuer string

	// TokenURL, if set, is the token endpoint, and discovery is skipped.
	TokenURL string

	// ClientID is the client's identifier at the authorization server.
	ClientID string

	// Key, if set, signs client assertions: ECDSA (ES256, ES384, ES512),
	// Ed25519 (EdDSA) or RSA of at least 2048 bits (PS256), any
	// crypto.Signer, such as a key in a KMS. KeyID is its "kid".
	Key   crypto.Signer `json:"-"`
	KeyID string

	// ClientSecret authenticates with client_secret_basic.
	ClientSecret string `json:"-"`

	// Assertion, if set, is sent as the client assertion (RFC 7521
	// section 4.2), such as AssertionFile's projected token.
	Assertion Assertion `json:"-"`

	// Scopes and Resource (RFC 8707 resource indicators) are requested
	// when set.
	Scopes, Resource []string
}

// Format prints c without its secret or key, and its URLs without userinfo,
// query or fragment, whatever the verb.
func (c ClientCredentials) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "securehttp.ClientCredentials{Issuer: %q, ClientID: %q, Auth: %s}", shownURL(c.Issuer), c.ClientID, c.authMethod())
}

// MarshalJSON encodes what identifies the client, its URLs as Format shows
// them, and never the secret or the key.
func (c ClientCredentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Issuer   string `json:"issuer,omitempty"`
		TokenURL string `json:"token_url,omitempty"`
		ClientID string `json:"client_id"`
		Auth     string `json:"auth"`
	}{shownURL(c.Issuer), shownURL(c.TokenURL), c.ClientID, c.authMethod()})
}

func (c ClientCredentials) authMethod() string {
	var methods []string
	if c.Key != nil {
		methods = append(methods, "private_key_jwt")
	}
	if c.ClientSecret != "" {
		methods = append(methods, "client_secret_basic")
	}
	if c.Assertion != nil {
		methods = append(methods, "client_assertion")
	}
	if len(methods) == 0 {
		return "tls_client_auth"
	}
	return strings.Join(methods, "+")
}

const (
	assertionLifetime     = 60 * time.Second
	maxTokenResponse      = 64 << 10
	maxMetadata           = 256 << 10
	maxExpiresIn          = 10 * 365 * 24 * 3600 // seconds; anything larger is a lie
	minDiscoveryBackoff   = time.Second
	maxDiscoveryBackoff   = time.Minute
	assertionTypeJWTBearr = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// tokenClient performs the token requests of one grant: ClientCredentials,
// JWTBearer or TokenExchange. The grant gives the parameters of each
// attempt; the client's authentication, discovery, the request loop and
// the reading of the answer are the same for all.
type tokenClient struct {
	issuer, tokenURL string
	auth             *clientAuth // nil: the client does not authenticate
	mtls             bool        // a client certificate is in use: prefer the mTLS endpoint aliases
	// params returns the grant's parameters for one attempt, grant_type
	// included. endpoint is the token endpoint, the audience of an
	// assertion that names none.
	params func(ctx context.Context, endpoint string) (url.Values, error)
	issued string     // the issued_token_type a token exchange wants; "" for other grants
	t      *transport // sends the requests; set by newTokenSource

	mu        sync.Mutex
	endpoint  string    // discovered or configured token endpoint
	discFails int       // consecutive discovery failures
	discAt    time.Time // no discovery before this
	discErr   error     // the last discovery failure
}

// checkClientCredentials checks c and returns its token client, not yet
// connected to a transport.
func checkClientCredentials(c *ClientCredentials, haveClientCert bool) (*tokenClient, error) {
	const field = "Bearer.ClientCredentials"
	if c.ClientID == "" {
		return nil, &ConfigError{Field: field + ".ClientID", Err: errors.New("required")}
	}
	tc, err := checkEndpoint(field, c.Issuer, c.TokenURL, haveClientCert)
	if err != nil {
		return nil, err
	}
	if tc.auth, err = checkClientAuth(field, c, haveClientCert); err != nil {
		return nil, err
	}
	scopes, resource := slices.Clone(c.Scopes), slices.Clone(c.Resource)
	if err := checkScopes(field+".Scopes", scopes); err != nil {
		return nil, err
	}
	if err := checkResources(field+".Resource", resource); err != nil {
		return nil, err
	}
	tc.params = func(context.Context, string) (url.Values, error) {
		form := url.Values{"grant_type": {"client_credentials"}}
		addScopeAndResource(form, scopes, resource)
		return form, nil
	}
	return tc, nil
}

// addScopeAndResource adds the scope (RFC 6749 section 3.3) and resource
// indicators (RFC 8707) of a token request to form.
func addScopeAndResource(form url.Values, scopes, resource []string) {
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	for _, r := range resource {
		form.Add("resource", r)
	}
}

// checkEndpoint checks a grant's Issuer and TokenURL, and returns a token
// client for them.
func checkEndpoint(field, issuer, tokenURL string, haveClientCert bool) (*tokenClient, error) {
	if issuer == "" && tokenURL == "" {
		return nil, &ConfigError{Field: field + ".Issuer", Err: errors.New("set Issuer, TokenURL or both")}
	}
	if issuer != "" {
		if err := checkIssuer(issuer); err != nil {
			return nil, &ConfigError{Field: field + ".Issuer", Value: issuer, Err: err}
		}
	}
	if tokenURL != "" {
		if err := checkHTTPSURL(tokenURL); err != nil {
			return nil, &ConfigError{Field: field + ".TokenURL", Value: tokenURL, Err: err}
		}
	}
	return &tokenClient{issuer: issuer, tokenURL: tokenURL, endpoint: tokenURL, mtls: haveClientCert}, nil
}

// checkScopes checks scope tokens (RFC 6749 section 3.3).
func checkScopes(field string, scopes []string) error {
	for i, s := range scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") || !isPrintableASCII(s) {
			return &ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Value: s, Err: errors.New("not a valid scope token")}
		}
	}
	return nil
}

// checkResources checks resource indicators (RFC 8707).
func checkResources(field string, resource []string) error {
	for i, r := range resource {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return &ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Value: r, Err: errors.New("must be an absolute URI without a fragment (RFC 8707)")}
		}
	}
	return nil
}

// checkIssuer enforces RFC 8414 section 2: an https URL with no query or
// fragment.
func checkIssuer(s string) error {
	if err := checkHTTPSURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return errors.New("an issuer has no query or fragment")
	}
	return nil
}

func checkHTTPSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w (scheme %q)", ErrInsecureScheme, u.Scheme)
	}
	if u.Host == "" || u.User != nil {
		return errors.New("needs a host and no userinfo")
	}
	if _, err := normalizeHost(u.Hostname()); err != nil {
		return err
	}
	return nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// fetch obtains a new token: Bearer.Refresh for a grant.
func (tc *tokenClient) fetch(ctx context.Context) (Token, error) {
	endpoint, err := tc.tokenEndpoint(ctx)
	if err != nil {
		return Token{}, err
	}
	tok, err := tc.request(ctx, endpoint)
	if err != nil && tc.tokenURL == "" {
		// The endpoint may have moved: discover it again next time.
		tc.forget(endpoint)
	}
	return tok, err
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request sends the token request, and sends it again as the transport's
// judge decides: after a failure that got no answer, a 5xx, or a DPoP nonce
// challenge (RFC 9449 section 8). Each attempt carries new assertions and a
// new proof, since the server has seen the last ones' jti.
func (tc *tokenClient) request(ctx context.Context, endpoint string) (Token, error) {
	t := tc.t
	base, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return Token{}, fmt.Errorf("token endpoint: %w", err)
	}
	base.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	base.Header.Set("Accept", "application/json")
	if a := tc.auth; a != nil {
		a.basic(base.Header)
	}
	x, err := t.admit(base)
	if err != nil {
		return Token{}, tc.failed(base.URL, err)
	}
	x.tokenRequest = true
	for {
		req, err := tc.attemptRequest(ctx, &x, endpoint)
		if err != nil {
			return Token{}, err
		}
		start := t.now()
		resp, err := t.attempt(&x, req)
		tok, oerr, err := tc.read(req, resp, err, start)
		if err == nil {
			return tok, nil
		}
		// judge reads the answer's status and headers, or, when none
		// came whole, the error.
		answered, failed := resp, err
		if oerr != nil {
			failed = nil
			x.nonceAsked = oerr.nonceRequested
		} else {
			answered = nil
		}
		if t.judge(&x, answered, failed) == noResend {
			return Token{}, err
		}
		if err := sleepCtx(ctx, t.wait(&x, answered)); err != nil {
			return Token{}, tc.failed(req.URL, err)
		}
	}
}

// attemptRequest returns the request of x's next attempt: the grant's form
// with the client's authentication, and with DPoP a new proof.
func (tc *tokenClient) attemptRequest(ctx context.Context, x *exchange, endpoint string) (*http.Request, error) {
	ctx = withAssertionAudience(ctx, endpoint)
	form, err := tc.params(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	if a := tc.auth; a != nil {
		if err := tc.authenticate(ctx, a, form); err != nil {
			return nil, err
		}
	}
	req := new(http.Request)
	*req = *x.req
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	if d := tc.t.dpop; d != nil {
		proof, err := d.proof(http.MethodPost, req.URL, "")
		if err != nil {
			return nil, err
		}
		req.Header = x.req.Header.Clone()
		req.Header["Dpop"] = []string{proof}
	}
	return req, nil
}

// read reads the answer to one token request. It returns the token, or the
// error, with the OAuth error apart when the server answered with one.
func (tc *tokenClient) read(req *http.Request, resp *http.Response, err error, start time.Time) (Token, *OAuthError, error) {
	t := tc.t
	if err != nil {
		t.logger.Debug("securehttp: token request failed", "url", redactURL(req.URL), "error_class", classify(err).class)
		return Token{}, nil, tc.failed(req.URL, err)
	}
	defer resp.Body.Close()
	t.logger.Debug("securehttp: token request", "url", redactURL(req.URL), "status", resp.StatusCode,
		"duration", t.now().Sub(start))
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return Token{}, nil, tc.failed(req.URL, wrap("reading the answer", err))
	}
	if len(data) > maxTokenResponse {
		return Token{}, nil, tc.failed(req.URL, fmt.Errorf("its answer exceeds %d bytes", maxTokenResponse))
	}
	if resp.StatusCode != http.StatusOK {
		oerr := parseOAuthError(resp.StatusCode, data, tc.sentCredentials(req))
		oerr.nonceRequested = resp.StatusCode == http.StatusBadRequest && oerr.Code == "use_dpop_nonce" &&
			len(resp.Header["Dpop-Nonce"]) > 0
		oerr.endpoint = redactURL(req.URL)
		if oerr.Code == "invalid_client" {
			oerr.hint = tc.credentialHint()
		}
		if resp.StatusCode >= 500 {
			return Token{}, oerr, tc.failed(req.URL, fmt.Errorf("answered %d", resp.StatusCode))
		}
		return Token{}, oerr, oerr
	}
	want := answer{tokenType: "Bearer", issued: tc.issued}
	if t.dpop != nil {
		want.tokenType = "DPoP" // a bearer token instead is a downgrade, refused
	}
	tok, err := parseTokenResponse(data, start, want, tc.sentCredentials(req))
	if err != nil {
		return Token{}, nil, tc.failed(req.URL, err)
	}
	return tok, nil, nil
}

// credentialHint says which credential an invalid_client answer is about.
func (tc *tokenClient) credentialHint() string {
	a := tc.auth
	switch {
	case a == nil:
		return "this grant does not authenticate the client: set its Client"
	case a.method != nil:
		return "check ClientCredentials.ClientID, and that the server holds the public key of Key (KeyID " + strconv.Quote(a.keyID) + ")"
	case a.secret != "":
		return "check ClientCredentials.ClientID and ClientSecret"
	case a.assertion != nil:
		return "check ClientCredentials.ClientID, and that the server trusts the issuer of the Assertion's tokens"
	}
	return "check ClientCredentials.ClientID, and that the server knows the client certificate (Config.GetClientCertificate) for it"
}

// failed says that the token endpoint at u failed with err, and the way out
// when its chain did not verify or matched no pin.
func (tc *tokenClient) failed(u *url.URL, err error) error {
	if err = tc.t.wayOut(u, "the token endpoint", err); isHinted(err) {
		return err
	}
	return wrap("the token endpoint "+redactURL(u), err)
}

// sentCredentials returns a guard for the credentials req carried and for
// the keys that signed them, so that no server text quoting one reaches an
// error.
func (tc *tokenClient) sentCredentials(req *http.Request) *echoGuard {
	g := sentCredentials(req)
	if a := tc.auth; a != nil && a.key != nil {
		g.addKey(a.key)
	}
	if d := tc.t.dpop; d != nil {
		g.addKey(d.key)
	}
	return g
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenResponse is the successful token response of RFC 6749 section 5.1,
// and of RFC 8693 section 2.2.1.
type tokenResponse struct {
	AccessToken     *string          `json:"access_token"`
	TokenType       *string          `json:"token_type"`
	ExpiresIn       *json.RawMessage `json:"expires_in"`
	IssuedTokenType *string          `json:"issued_token_type"`
}

// answer is what a token response must say: its token_type and, for a token
// exchange, its issued_token_type ("" for other grants).
type answer struct {
	tokenType, issued string
}

// parseTokenResponse reads a token response strictly: one JSON object with
// a string access_token and token_type; expires_in a whole number of
// seconds. received is when the request was sent, so that the expiry errs
// early. guard knows the request's credentials, which an unexpected
// token_type quoted in the error must not show. A token exchange's answer
// names the type of token it issued, which must be the one asked for; a
// token other than an access token may have the token_type N_A (RFC 8693
// section 2.2.1), and is sent as a bearer token all the same.
func parseTokenResponse(data []byte, received time.Time, want answer, guard *echoGuard) (Token, error) {
	var r tokenResponse
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil || dec.More() {
		return Token{}, errors.New("token response is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Token{}, errors.New("token response has data after its JSON object")
	}
	if r.AccessToken == nil || *r.AccessToken == "" {
		return Token{}, errors.New("token response has no access_token")
	}
	if want.issued != "" {
		if r.IssuedTokenType == nil {
			return Token{}, errors.New("token response has no issued_token_type")
		}
		if *r.IssuedTokenType != want.issued {
			return Token{}, fmt.Errorf("token response has issued_token_type %q, want %s", guard.text(*r.IssuedTokenType, 64), want.issued)
		}
	}
	if r.TokenType == nil {
		return Token{}, errors.New("token response has no token_type")
	}
	notAccess := want.issued != "" && want.issued != tokenTypeAccess && want.tokenType == "Bearer"
	if !strings.EqualFold(*r.TokenType, want.tokenType) && !(notAccess && *r.TokenType == "N_A") {
		return Token{}, fmt.Errorf("token response has token_type %q, want %s", guard.text(*r.TokenType, 32), want.tokenType)
	}
	tok := Token{Value: *r.AccessToken}
	if r.ExpiresIn != nil {
		secs, err := parseExpiresIn(*r.ExpiresIn)
		if err != nil {
			return Token{}, err
		}
		tok.Expiry = received.Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}

// parseExpiresIn accepts a JSON number of seconds, or a string of digits as
// some servers send it.
func parseExpiresIn(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil || secs <= 0 || secs > maxExpiresIn {
		return 0, errors.New("token response has an invalid expires_in")
	}
	return secs, nil
}

// tokenEndpoint returns the configured or discovered token endpoint.
func (tc *tokenClient) tokenEndpoint(ctx context.Context) (string, error) {
	tc.mu.Lock()
	if tc.endpoint != "" {
		defer tc.mu.Unlock()
		return tc.endpoint, nil
	}
	if tc.discErr != nil && tc.t.now().Before(tc.discAt) {
		defer tc.mu.Unlock()
		return "", tc.discErr
	}
	tc.mu.Unlock()

	endpoint, err := tc.discover(ctx)

	tc.mu.Lock()
	defer tc.mu.Unlock()
	if err != nil {
		tc.discFails++
		tc.discErr = err
		tc.discAt = tc.t.now().Add(min(minDiscoveryBackoff<<min(tc.discFails-1, 6), maxDiscoveryBackoff))
		return "", err
	}
	tc.discFails, tc.discErr = 0, nil
	tc.endpoint = endpoint
	return endpoint, nil
}

// forget drops a discovered endpoint after a failure.
func (tc *tokenClient) forget(endpoint string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.endpoint == endpoint {
		tc.endpoint = ""
	}
}

// discover reads the issuer's metadata: RFC 8414 first, then OpenID Connect
// Discovery. A document whose issuer differs from the configured one is
// refused at once, without trying the other: it is an attack or a
// misconfiguration, and no token request may follow.
func (tc *tokenClient) discover(ctx context.Context) (string, error) {
	u, _ := url.Parse(tc.issuer) // checked by newTokenClient
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	base := u.Scheme + "://" + u.Host
	candidates := []string{
		base + "/.well-known/oauth-authorization-server" + path, // RFC 8414 section 3.1
		base + path + "/.well-known/openid-configuration",       // OpenID Connect Discovery 1.0
	}
	var errs []error
	for _, c := range candidates {
		endpoint, err := tc.metadata(ctx, c)
		if err == nil {
			return endpoint, nil
		}
		if errors.Is(err, ErrIssuerMismatch) || ctx.Err() != nil {
			return "", err
		}
		errs = append(errs, err)
	}
	return "", wrap("discovering the token endpoint", errors.Join(errs...))
}

// metadata fetches one metadata document and returns its token_endpoint, or
// with a client certificate in use, its mTLS alias when it has one.
func (tc *tokenClient) metadata(ctx context.Context, docURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := tc.t.direct(req, "the authorization server")
	if err != nil {
		return "", wrap(redactURL(req.URL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		drainAndClose(resp.Body)
		return "", fmt.Errorf("%s answered %d", redactURL(req.URL), resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	if err != nil {
		return "", wrap(redactURL(req.URL), err)
	}
	if len(data) > maxMetadata {
		return "", fmt.Errorf("%s: metadata exceeds %d bytes", redactURL(req.URL), maxMetadata)
	}
	var md struct {
		Issuer        *string         `json:"issuer"`
		TokenEndpoint *string         `json:"token_endpoint"`
		Aliases       json.RawMessage `json:"mtls_endpoint_aliases"`
	}
	if err := json.Unmarshal(data, &md); err != nil {
		return "", fmt.Errorf("%s: metadata is not a JSON object", redactURL(req.URL))
	}
	if md.Issuer == nil || *md.Issuer != tc.issuer {
		got := "(none)"
		if md.Issuer != nil {
			got = strconv.Quote(clean(*md.Issuer, maxDescription))
		}
		return "", fmt.Errorf("%w: %s names %s, want %q", ErrIssuerMismatch, redactURL(req.URL), got, tc.issuer)
	}
	if md.TokenEndpoint == nil {
		return "", fmt.Errorf("%s: metadata has no token_endpoint", redactURL(req.URL))
	}
	if err := checkHTTPSURL(*md.TokenEndpoint); err != nil {
		return "", fmt.Errorf("%s: token_endpoint: %w", redactURL(req.URL), err)
	}
	if !tc.mtls || len(md.Aliases) == 0 || string(md.Aliases) == "null" {
		return *md.TokenEndpoint, nil
	}
	// RFC 8705 section 5: a client using mutual TLS sends its token
	// requests to the alias, where the server asks for its certificate.
	var aliases struct {
		TokenEndpoint *string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(md.Aliases, &aliases); err != nil {
		return "", fmt.Errorf("%s: mtls_endpoint_aliases is not a JSON object with string members", redactURL(req.URL))
	}
	if aliases.TokenEndpoint == nil {
		return *md.TokenEndpoint, nil
	}
	if err := checkHTTPSURL(*aliases.TokenEndpoint); err != nil {
		return "", fmt.Errorf("%s: mtls_endpoint_aliases.token_endpoint: %w", redactURL(req.URL), err)
	}
	return *aliases.TokenEndpoint, nil
}
