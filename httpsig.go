package securehttp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"time"
)

// MessageSignatures signs every request to its hosts with HTTP Message
// Signatures (RFC 9421), afresh on each attempt and after every other
// header is set, and gives each request body a Content-Digest (RFC 9530).
// A body must then have GetBody: it is read once for the digest and once
// to be sent. docs/signatures.md tells the rest.
type MessageSignatures struct {
	// Key signs: Ed25519, ECDSA P-256 or P-384, or RSA of at least 2048
	// bits (rsa-pss-sha512), any crypto.Signer. KeyID, required, names it.
	Key   crypto.Signer `json:"-"`
	KeyID string

	// Hosts are Bearer.Hosts patterns; empty means Bearer.Hosts.
	Hosts []string

	// Label names the signature; empty means "sig1". Tag, if set, is its
	// tag parameter, such as "fapi-2-request".
	Label, Tag string

	// Components are the covered components, as "@method", "content-type"
	// or `"@query-param";name="id"`, each required. Empty means FAPI
	// 2.0's: @method, @target-uri, then authorization, dpop and
	// content-digest when the request has them.
	Components []string

	// Responses, if set, verifies the responses of these hosts.
	Responses *ResponseSignatures
}

// ResponseSignatures verifies the signatures of responses (RFC 9421): one
// that fails is an error matching ErrResponseSignature, and its body is
// closed unread. A body's Content-Digest is checked as it is read.
type ResponseSignatures struct {
	// Keys returns the public key that keyID names. Required.
	Keys func(ctx context.Context, keyID string) (crypto.PublicKey, error) `json:"-"`

	// Required refuses unsigned responses; otherwise only a signature
	// that is there must verify.
	Required bool

	// Tag, if set, is the tag a signature must carry ("fapi-2-response").
	Tag string

	// Components must be covered; empty means @status, "@method";req,
	// "@target-uri";req and, with a body, content-digest.
	Components []string

	// MaxAge bounds how far created may be from now, either way; zero
	// means a minute.
	MaxAge time.Duration
}

// Format prints m without key material, whatever the verb.
func (m MessageSignatures) Format(f fmt.State, _ rune) {
	var key any = "nil"
	if m.Key != nil {
		key = fmt.Sprintf("%T", m.Key.Public())
	}
	fmt.Fprintf(f, "securehttp.MessageSignatures{Key: %s, KeyID: %q, Hosts: %q, Responses: %t}", key, m.KeyID, m.Hosts, m.Responses != nil)
}

const (
	defaultSignatureLabel = "sig1"
	defaultSignatureAge   = time.Minute
	// expiresLeeway is how long after its expires parameter a response
	// signature is still taken, for the clocks' difference.
	expiresLeeway = 5 * time.Second
)

// methodPS512 is RFC 9421's rsa-pss-sha512: a salt as long as the hash.
var methodPS512 = &signerMethod{alg: "PS512", hash: crypto.SHA512}

// signatures is the runtime state behind a MessageSignatures: what each
// attempt's signature is made of. Nil signs nothing and costs nothing.
type signatures struct {
	hosts  []hostPattern
	key    crypto.Signer
	method *signerMethod
	alg    string
	// params is ";keyid=…" and ";tag=…", serialised once; created comes
	// before it in every signature.
	params string
	label  string
	comps  []component // nil: the FAPI 2.0 defaults
	resp   *responseCheck
	now    func() time.Time
}

// responseCheck is a ResponseSignatures after its checks.
type responseCheck struct {
	keys     func(ctx context.Context, keyID string) (crypto.PublicKey, error)
	required bool
	tag      string
	comps    []component // nil: the defaults
	maxAge   time.Duration
}

// Components that a signature covers when none are configured.
var (
	compMethod        = mustComponent("@method")
	compTargetURI     = mustComponent("@target-uri")
	compAuthorization = mustComponent("authorization")
	compDPoP          = mustComponent("dpop")
	compContentDigest = mustComponent("content-digest")
	compStatus        = mustComponent("@status")
	compReqMethod     = mustComponent(`"@method";req`)
	compReqTargetURI  = mustComponent(`"@target-uri";req`)
)

// checkSignatures checks every entry of s. Its hosts default to the
// Bearer's; without a Bearer they must be listed.
func checkSignatures(s *MessageSignatures, b *Bearer, now func() time.Time) (*signatures, error) {
	out := &signatures{key: s.Key, label: s.Label, now: now}
	hosts, field := s.Hosts, "Signatures.Hosts"
	if len(hosts) == 0 {
		if b == nil || len(b.Hosts) == 0 {
			return nil, &ConfigError{Field: field, Err: errors.New("no hosts: list the hosts whose requests are signed, or set Bearer.Hosts")}
		}
		hosts, field = b.Hosts, "Bearer.Hosts"
	}
	for i, h := range hosts {
		p, err := parseHostPortPattern(h)
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Value: h, Err: err}
		}
		out.hosts = append(out.hosts, p)
	}
	var err error
	if out.method, out.alg, err = signatureMethodFor(s.Key); err != nil {
		return nil, &ConfigError{Field: "Signatures.Key", Err: err}
	}
	if err := checkSignatureKey(s.Key, out.method, out.alg); err != nil {
		return nil, &ConfigError{Field: "Signatures.Key", Err: err}
	}
	if s.KeyID == "" || !sfStringSafe(s.KeyID) {
		return nil, &ConfigError{Field: "Signatures.KeyID", Value: s.KeyID, Err: errors.New("required, in printable ASCII")}
	}
	if !sfStringSafe(s.Tag) {
		return nil, &ConfigError{Field: "Signatures.Tag", Value: s.Tag, Err: errors.New("must be printable ASCII")}
	}
	if out.label == "" {
		out.label = defaultSignatureLabel
	}
	if !sfKey(out.label) {
		return nil, &ConfigError{Field: "Signatures.Label", Value: s.Label,
			Err: errors.New("must be a structured field key: a lower-case letter or *, then lower-case letters, digits, _, -, . or *")}
	}
	out.params = ";keyid=" + sfQuote(s.KeyID)
	if s.Tag != "" {
		out.params += ";tag=" + sfQuote(s.Tag)
	}
	if out.comps, err = parseComponents(s.Components, "Signatures.Components", false); err != nil {
		return nil, err
	}
	if r := s.Responses; r != nil {
		if r.Keys == nil {
			return nil, &ConfigError{Field: "Signatures.Responses.Keys", Err: errors.New("required: it returns the key that verifies a response")}
		}
		if r.MaxAge < 0 {
			return nil, &ConfigError{Field: "Signatures.Responses.MaxAge", Value: r.MaxAge.String(), Err: errors.New("must not be negative")}
		}
		if !sfStringSafe(r.Tag) {
			return nil, &ConfigError{Field: "Signatures.Responses.Tag", Value: r.Tag, Err: errors.New("must be printable ASCII")}
		}
		out.resp = &responseCheck{keys: r.Keys, required: r.Required, tag: r.Tag, maxAge: orDefault(r.MaxAge, defaultSignatureAge)}
		if out.resp.comps, err = parseComponents(r.Components, "Signatures.Responses.Components", true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseComponents reads configured component identifiers, refusing any
// that cannot apply to the message kind, and duplicates.
func parseComponents(ids []string, field string, response bool) ([]component, error) {
	var out []component
	for i, id := range ids {
		c, err := parseComponentString(id)
		if err == nil {
			err = c.applies(response)
		}
		if err == nil && containsComponent(out, c) {
			err = errors.New("listed twice")
		}
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Value: id, Err: err}
		}
		out = append(out, c)
	}
	return out, nil
}

func mustComponent(id string) component {
	c, err := parseComponentString(id)
	if err != nil {
		panic(err)
	}
	return c
}

// signatureMethodFor chooses the RFC 9421 algorithm that key signs with.
func signatureMethodFor(key crypto.Signer) (*signerMethod, string, error) {
	m, err := signingMethodFor(key)
	if err != nil {
		return nil, "", err
	}
	switch m {
	case methodEdDSA:
		return m, "ed25519", nil
	case methodES256:
		return m, "ecdsa-p256-sha256", nil
	case methodES384:
		return m, "ecdsa-p384-sha384", nil
	case methodPS256:
		return methodPS512, "rsa-pss-sha512", nil
	}
	return nil, "", fmt.Errorf("%s keys have no RFC 9421 algorithm: use Ed25519, ECDSA P-256 or P-384, or RSA", m.Alg())
}

// checkSignatureKey signs once with key and verifies the signature with its
// public key, so that a signer whose Public does not match it, or that
// cannot sign, is refused before any request.
func checkSignatureKey(key crypto.Signer, m *signerMethod, alg string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the key panicked while signing (%T)", p)
		}
	}()
	msg := []byte("securehttp RFC 9421 key check")
	sig, err := m.sign(key, msg)
	if err != nil {
		return errors.New("the key cannot sign")
	}
	if verifySignature(key.Public(), alg, msg, sig) != nil {
		return errors.New("the key's signature does not verify with its public key")
	}
	return nil
}

// sign returns req as it goes on the wire: when its host is one of the
// signing hosts, a copy with a Content-Digest for its body and a fresh
// signature over the configured components, and signed true. req is never
// modified; its body is closed when sign fails.
func (s *signatures) sign(req *http.Request) (out *http.Request, signed bool, err error) {
	if s == nil || !s.covers(req) {
		return req, false, nil
	}
	out, err = s.signed(req)
	if err != nil {
		closeBody(req)
		return nil, false, fmt.Errorf("securehttp: signing the request: %w", err)
	}
	return out, true, nil
}

// covers reports whether req's host and port are among the signing hosts.
func (s *signatures) covers(req *http.Request) bool {
	host, err := normalizeHost(req.URL.Hostname())
	if err != nil {
		return false
	}
	port := req.URL.Port()
	for _, p := range s.hosts {
		if p.match(host) && p.matchPort(port) {
			return true
		}
	}
	return false
}

func (s *signatures) signed(req *http.Request) (*http.Request, error) {
	out := new(http.Request)
	*out = *req
	// The caller's header is shared with other attempts and maybe other
	// requests: ours is a new map, the slices of the values shared.
	h := make(http.Header, len(req.Header)+4)
	for k, v := range req.Header {
		h[k] = v
	}
	out.Header = h
	if hasBody(req) {
		digest, body, err := digestBody(req)
		if err != nil {
			return nil, err
		}
		h["Content-Digest"] = []string{digest}
		out.Body = body
	}
	if s.resp != nil && len(h["Accept-Encoding"]) == 0 {
		// net/http would otherwise ask for gzip and hand on the body
		// decompressed, which the response's Content-Digest does not
		// cover.
		h["Accept-Encoding"] = []string{"identity"}
	}
	m := message{req: out}
	comps := s.comps
	if comps == nil {
		var buf [5]component
		comps = append(buf[:0], compMethod, compTargetURI)
		for _, c := range [...]component{compAuthorization, compDPoP, compContentDigest} {
			if len(h[c.key]) > 0 {
				comps = append(comps, c)
			}
		}
	}

	// The signature parameters: the inner list of components, created, then
	// keyid and tag.
	size := len(s.params) + 32
	for i := range comps {
		size += len(comps[i].id) + 1
	}
	params := make([]byte, 0, size)
	params = append(params, '(')
	for i := range comps {
		if i > 0 {
			params = append(params, ' ')
		}
		params = append(params, comps[i].id...)
	}
	params = append(params, ");created="...)
	params = strconv.AppendInt(params, s.now().Unix(), 10)
	params = append(params, s.params...)

	base, err := signatureBase(make([]byte, 0, 512), m, comps, params)
	if err != nil {
		return nil, err
	}
	sig, err := s.method.sign(s.key, base)
	if err != nil {
		// The signer's error is kept for errors.Is; it holds no secret.
		return nil, err
	}
	enc := base64.StdEncoding
	sigField := make([]byte, 0, len(s.label)+3+enc.EncodedLen(len(sig)))
	sigField = append(sigField, s.label...)
	sigField = append(sigField, "=:"...)
	sigField = enc.AppendEncode(sigField, sig)
	sigField = append(sigField, ':')
	input := s.label + "=" + string(params)
	if err := addSignatureFields(h, s.label, input, string(sigField)); err != nil {
		return nil, err
	}
	return out, nil
}

// addSignatureFields adds a signature to h, after any the caller put there
// under another label.
func addSignatureFields(h http.Header, label, input, sig string) error {
	prevInput, prevSig := h["Signature-Input"], h["Signature"]
	if len(prevInput) == 0 && len(prevSig) == 0 {
		h["Signature-Input"] = []string{input}
		h["Signature"] = []string{sig}
		return nil
	}
	sigs, err := parseSignatures(prevInput, prevSig)
	if err != nil {
		return fmt.Errorf("the request's own signature fields: %w", err)
	}
	for _, p := range sigs {
		if p.label == label {
			return fmt.Errorf("the request already has a signature labelled %q", label)
		}
	}
	h["Signature-Input"] = append(prevInput[:len(prevInput):len(prevInput)], input)
	h["Signature"] = append(prevSig[:len(prevSig):len(prevSig)], sig)
	return nil
}

// hasBody reports whether req has content to send.
func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// digestBody reads the body that req.GetBody gives through SHA-256 and
// returns its Content-Digest, and req.Body wrapped so that sending bytes
// that differ from those fails the request rather than send a digest
// that lies. A body without GetBody cannot be read twice, and is refused:
// holding it in memory to hash it first is what GetBody lets us avoid.
func digestBody(req *http.Request) (string, io.ReadCloser, error) {
	if req.GetBody == nil {
		return "", nil, errNoGetBody
	}
	rc, err := req.GetBody()
	if err != nil {
		return "", nil, fmt.Errorf("the body's GetBody: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, rc)
	rc.Close()
	if err != nil {
		return "", nil, &bodyError{err}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	digest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	return digest, &sentBody{rc: req.Body, h: sha256.New(), want: sum[:]}, nil
}

var errNoGetBody = errors.New("the body has no GetBody, and Content-Digest needs to read it before it is sent: " +
	"use http.NewRequest with a bytes.Reader, bytes.Buffer or strings.Reader, or set GetBody")

// sentBody checks, as the body is sent, that it holds the bytes digested.
type sentBody struct {
	rc   io.ReadCloser
	h    hash.Hash
	want []byte
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF && subtle.ConstantTimeCompare(b.h.Sum(nil), b.want) != 1 {
		return n, errors.New("securehttp: the request body sent differs from the one GetBody gave, which Content-Digest covers")
	}
	return n, err
}

func (b *sentBody) Close() error { return b.rc.Close() }

// verify judges the response to a request that sign signed, when responses
// are verified: it returns resp, or a response whose body checks its
// Content-Digest as it is read, or an error matching ErrResponseSignature,
// the body closed unread.
func (s *signatures) verify(signed bool, req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	if err != nil || !signed || s.resp == nil {
		return resp, err
	}
	if err := s.resp.check(req, resp, s.now()); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// check verifies resp, the answer to req, and arms its body's digest check.
func (c *responseCheck) check(req *http.Request, resp *http.Response, now time.Time) error {
	inputs, sigFields := resp.Header["Signature-Input"], resp.Header["Signature"]
	if len(inputs) == 0 && len(sigFields) == 0 {
		if c.required {
			return responseSignatureError("the response is not signed")
		}
		return nil
	}
	sigs, err := parseSignatures(inputs, sigFields)
	if err != nil {
		return responseSignatureError(echoFree(req, err.Error()))
	}
	m := message{req: req, resp: resp}
	var why string
	for _, p := range sigs {
		err := c.verifyOne(req.Context(), m, p, now)
		if err == nil {
			if p.covers(compContentDigest) && !noContent(req, resp) {
				return armDigest(resp)
			}
			return nil
		}
		if why == "" {
			why = fmt.Sprintf("signature %q: %v", p.label, err)
		}
	}
	return responseSignatureError(echoFree(req, why))
}

// echoFree returns why, the reason a response's signature failed, or
// echoRedacted when it quotes a credential that req carried: the server's
// text in it (a label, a keyid, a tag, an alg) could, and callers log
// errors.
func echoFree(req *http.Request, why string) string {
	return sentCredentials(req).text(why, len(why))
}

func responseSignatureError(why string) error {
	return fmt.Errorf("%w: %s", ErrResponseSignature, causeText(errors.New(why)))
}

// verifyOne verifies one signature of a response against the policy.
func (c *responseCheck) verifyOne(ctx context.Context, m message, p *parsedSignature, now time.Time) error {
	if p.err != nil {
		return p.err
	}
	if c.tag != "" && p.tag != c.tag {
		return fmt.Errorf("tag %q, want %q", p.tag, c.tag)
	}
	required := c.comps
	if required == nil {
		required = []component{compStatus, compReqMethod, compReqTargetURI}
		if responseHasBody(m.req, m.resp) {
			required = append(required, compContentDigest)
		}
	}
	for _, r := range required {
		if !p.covers(r) {
			return fmt.Errorf("does not cover %s", r.id)
		}
	}
	if !p.hasCreated {
		return errors.New("has no created parameter")
	}
	created := time.Unix(p.created, 0)
	if d := now.Sub(created); d > c.maxAge || d < -c.maxAge {
		return fmt.Errorf("created %s, more than %s from now", created.UTC().Format(time.RFC3339), c.maxAge)
	}
	if p.hasExpires && now.After(time.Unix(p.expires, 0).Add(expiresLeeway)) {
		return errors.New("has expired")
	}
	key, err := c.lookup(ctx, p.keyID)
	if err != nil {
		return err
	}
	base, err := signatureBase(make([]byte, 0, 512), m, p.comps, p.params)
	if err != nil {
		return err
	}
	return verifySignature(key, p.alg, base, p.sig)
}

// lookup calls Keys, whose panic fails the verification only.
func (c *responseCheck) lookup(ctx context.Context, keyID string) (key crypto.PublicKey, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the Keys function panicked (%T)", p)
		}
	}()
	key, err = c.keys(ctx, keyID)
	if err != nil {
		return nil, fmt.Errorf("no key for keyid %q: %w", keyID, err)
	}
	if key == nil {
		return nil, fmt.Errorf("no key for keyid %q", keyID)
	}
	return key, nil
}

// responseHasBody reports whether resp, the answer to req, has content.
func responseHasBody(req *http.Request, resp *http.Response) bool {
	return !noContent(req, resp) && resp.ContentLength != 0
}

// noContent reports whether resp, the answer to req, is one that never has
// content. A HEAD or 304 response may carry the Content-Digest of the
// content a GET or 200 would have (RFC 9110 sections 9.3.2 and 15.4.5), and
// there is nothing to check it against. An empty 200 is still checked: a
// body removed on the way must not pass for an empty one.
func noContent(req *http.Request, resp *http.Response) bool {
	return req.Method == http.MethodHead || resp.StatusCode < 200 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
}

// armDigest makes resp's body check its Content-Digest as it is read: the
// read that reaches its end fails on a mismatch.
func armDigest(resp *http.Response) error {
	digests, err := parseContentDigest(resp.Header["Content-Digest"])
	if err != nil {
		return responseSignatureError(err.Error())
	}
	// A body of up to maxEagerDigest bytes is checked whole before the
	// response is handed on: a reader that stops at the end of a JSON value
	// (json.Decoder) never makes the read that would report a mismatch at
	// EOF, and over HTTP/2 or chunked encoding that read is not made at
	// all. A larger body is checked as it is read, failing its last read.
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxEagerDigest+1))
	if err != nil {
		return &answeredError{status: resp.StatusCode, err: err}
	}
	b := &digestedBody{rc: resp.Body, digests: digests}
	b.hash(head)
	if len(head) <= maxEagerDigest {
		if err := b.check(); err != nil {
			return err
		}
		resp.Body = &checkedBody{Reader: bytes.NewReader(head), rc: resp.Body}
		return nil
	}
	b.r = io.MultiReader(bytes.NewReader(head), resp.Body)
	b.hashed = len(head)
	resp.Body = b
	return nil
}

// answeredError is a response whose body failed while it was read to be
// checked against its Content-Digest: the server answered, so the request
// may have taken effect.
type answeredError struct {
	status int
	err    error
}

func (e *answeredError) Error() string {
	return fmt.Sprintf("securehttp: the server answered %d, but its body failed before it could be checked: %v", e.status, e.err)
}

func (e *answeredError) Unwrap() error { return e.err }

// maxEagerDigest is the largest response body checked against its
// Content-Digest before the response is handed on.
const maxEagerDigest = 1 << 20

// checkedBody is a response body already checked against its digest.
type checkedBody struct {
	*bytes.Reader
	rc io.ReadCloser
}

func (b *checkedBody) Close() error { return b.rc.Close() }

// digestedBody checks a large response body against its Content-Digest as
// it is read.
type digestedBody struct {
	rc      io.ReadCloser
	r       io.Reader // the bytes already read for the digest, then rc
	hashed  int       // how many bytes of r were hashed before it was read
	digests []contentDigest
	err     error // the mismatch, once found
}

func (b *digestedBody) hash(p []byte) {
	for _, d := range b.digests {
		d.h.Write(p)
	}
}

func (b *digestedBody) check() error {
	for _, d := range b.digests {
		if subtle.ConstantTimeCompare(d.h.Sum(nil), d.want) != 1 {
			b.err = responseSignatureError("the body does not match its Content-Digest (" + d.alg + ")")
			return b.err
		}
	}
	return nil
}

func (b *digestedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	fresh := p[:n]
	if skip := min(b.hashed, n); skip > 0 {
		fresh, b.hashed = fresh[skip:], b.hashed-skip
	}
	b.hash(fresh)
	if err == io.EOF {
		if cerr := b.check(); cerr != nil {
			// The bytes of this read are withheld with the mismatch.
			return 0, cerr
		}
	}
	return n, err
}

func (b *digestedBody) Close() error { return b.rc.Close() }

// contentDigest is one digest of a Content-Digest field we can check.
type contentDigest struct {
	alg  string
	want []byte
	h    hash.Hash
}

// verifySignature verifies sig over base with key by RFC 9421's algorithm
// for the key; alg, the signature's alg parameter, must name it when set.
func verifySignature(key crypto.PublicKey, alg string, base, sig []byte) error {
	want, err := keyAlgorithm(key)
	if err != nil {
		return err
	}
	if alg != "" && alg != want {
		return fmt.Errorf("alg %q does not fit the key (%s)", alg, want)
	}
	ok := false
	switch k := key.(type) {
	case ed25519.PublicKey:
		ok = len(sig) == ed25519.SignatureSize && ed25519.Verify(k, base, sig)
	case *ecdsa.PublicKey:
		size, h := 32, crypto.SHA256
		if k.Curve == elliptic.P384() {
			size, h = 48, crypto.SHA384
		}
		if len(sig) == 2*size {
			r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
			d := h.New()
			d.Write(base)
			ok = ecdsa.Verify(k, d.Sum(nil), r, s)
		}
	case *rsa.PublicKey:
		// RFC 9421 asks for a 64-byte salt; some signers use the longest,
		// and the salt's length does not weaken the signature.
		d := sha512.Sum512(base)
		ok = rsa.VerifyPSS(k, crypto.SHA512, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA512}) == nil
	}
	if !ok {
		return errors.New("the signature does not verify")
	}
	return nil
}

// keyAlgorithm names the RFC 9421 algorithm of a verification key.
func keyAlgorithm(key crypto.PublicKey) (string, error) {
	switch k := key.(type) {
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return "ed25519", nil
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256-sha256", nil
		case elliptic.P384():
			return "ecdsa-p384-sha384", nil
		}
	case *rsa.PublicKey:
		if k.N != nil && k.N.BitLen() >= minRSABits {
			return "rsa-pss-sha512", nil
		}
		return "", fmt.Errorf("an RSA key under %d bits", minRSABits)
	}
	return "", fmt.Errorf("unsupported verification key %T: want Ed25519, ECDSA P-256 or P-384, or RSA", key)
}
