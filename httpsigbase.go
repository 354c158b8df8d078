package securehttp

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// The signature base (RFC 9421 section 2.5), and the structured fields
// that carry signatures and digests, read strictly.

const (
	// maxSignatureField bounds the Signature-Input or Signature fields of
	// one message, all lines together, and maxDigestField its
	// Content-Digest.
	maxSignatureField = 8 << 10
	maxDigestField    = 1 << 10
	// maxSignatures bounds the signatures of one message, and
	// maxComponents the components of one signature.
	maxSignatures = 8
	maxComponents = 32
	// maxSignatureBytes is the longest signature value: RSA of 8192 bits.
	maxSignatureBytes = 1024
	maxSigLabelLen    = 64
)

// component is a component identifier (RFC 9421 section 2).
type component struct {
	name  string // a derived component ("@method") or a field name, in lower case
	key   string // a field's canonical header key
	req   bool   // the req parameter: taken from the request a response answers
	qname string // @query-param's name parameter
	id    string // the identifier, strictly serialised, as the base shows it
	err   error  // from a received signature: why its value cannot be derived
}

func (c component) same(o component) bool {
	return c.name == o.name && c.req == o.req && c.qname == o.qname
}

func containsComponent(list []component, c component) bool {
	for _, o := range list {
		if o.same(c) {
			return true
		}
	}
	return false
}

// derivedComponents lists the derived components this package derives,
// and whether each is a request's.
var derivedComponents = map[string]bool{
	"@method": true, "@target-uri": true, "@authority": true, "@scheme": true,
	"@request-target": true, "@path": true, "@query": true, "@query-param": true,
	"@status": false,
}

// parseComponentString reads a configured identifier: a bare name, or a
// serialised identifier with its parameters.
func parseComponentString(s string) (component, error) {
	if strings.HasPrefix(s, `"`) {
		it, err := httpsfv.UnmarshalItem([]string{s})
		if err != nil {
			return component{}, fmt.Errorf("not a component identifier: %v", err)
		}
		c := componentFromItem(it)
		return c, c.err
	}
	c := componentFromItem(httpsfv.Item{Value: strings.ToLower(s), Params: httpsfv.NewParams()})
	return c, c.err
}

// componentFromItem reads an identifier; c.err says what makes it
// unusable: an unknown derived component, or a parameter this package does
// not derive (sf, key, bs, tr).
func componentFromItem(it httpsfv.Item) component {
	name, ok := it.Value.(string)
	if !ok {
		return component{err: errors.New("a component identifier must be a string")}
	}
	c := component{name: name}
	if id, err := httpsfv.Marshal(it); err == nil {
		c.id = id
	} else {
		c.err = fmt.Errorf("component %q: %v", name, err)
		return c
	}
	if strings.HasPrefix(name, "@") {
		if _, ok := derivedComponents[name]; !ok {
			c.err = fmt.Errorf("unknown derived component %s", c.id)
			return c
		}
	} else if !isHTTPToken(name) || strings.ToLower(name) != name {
		c.err = fmt.Errorf("component %s is not a field name in lower case", c.id)
		return c
	} else {
		c.key = textproto.CanonicalMIMEHeaderKey(name)
	}
	if it.Params == nil {
		return c
	}
	for _, p := range it.Params.Names() {
		v, _ := it.Params.Get(p)
		switch {
		case p == "req" && v == true:
			c.req = true
		case p == "name" && name == "@query-param":
			s, ok := v.(string)
			if !ok {
				c.err = fmt.Errorf("component %s: name must be a string", c.id)
				return c
			}
			c.qname = s
		default:
			c.err = fmt.Errorf("component %s: unsupported parameter %q", c.id, p)
			return c
		}
	}
	if name == "@query-param" && c.qname == "" {
		c.err = errors.New(`"@query-param" needs its name parameter`)
	}
	return c
}

// applies reports whether c can be derived from a request (response
// false) or from a response and the request it answers.
func (c component) applies(response bool) error {
	request, derived := derivedComponents[c.name]
	switch {
	case !response && c.req:
		return fmt.Errorf("%s: req applies to responses only", c.id)
	case c.name == "@status" && (!response || c.req):
		return errors.New(`"@status" is a response's only`)
	case response && derived && request && !c.req:
		return fmt.Errorf("%s names the request: add ;req", c.id)
	}
	return nil
}

// message is what a signature covers: a request, or a response and the
// request it answers.
type message struct {
	req  *http.Request
	resp *http.Response // nil when the request is signed
}

// signatureBase appends to dst the signature base of m over comps, whose
// signature parameters are params (RFC 9421 section 2.5).
func signatureBase(dst []byte, m message, comps []component, params []byte) ([]byte, error) {
	for i := range comps {
		c := &comps[i]
		if c.err != nil {
			return nil, c.err
		}
		for j := range i {
			if comps[j].same(*c) {
				return nil, fmt.Errorf("component %s listed twice", c.id)
			}
		}
		dst = append(dst, c.id...)
		dst = append(dst, ": "...)
		var err error
		if dst, err = appendComponentValue(dst, c, m); err != nil {
			return nil, err
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, `"@signature-params": `...)
	dst = append(dst, params...)
	for _, b := range dst {
		if b >= 0x80 {
			return nil, errors.New("the signature base is not ASCII")
		}
	}
	return dst, nil
}

// appendComponentValue appends the value of component c of m.
func appendComponentValue(dst []byte, c *component, m message) ([]byte, error) {
	if c.req && m.resp == nil {
		return nil, fmt.Errorf("%s: req applies to responses only", c.id)
	}
	r := m.req
	if !strings.HasPrefix(c.name, "@") {
		var values []string
		switch {
		case m.resp != nil && !c.req:
			values = m.resp.Header[c.key]
		case c.name == "host":
			values = []string{requestHost(r)}
		default:
			values = r.Header[c.key]
		}
		if len(values) == 0 {
			return nil, fmt.Errorf("the message has no %q field", c.name)
		}
		return appendFieldValue(dst, values)
	}
	if c.name == "@status" {
		if m.resp == nil || c.req || m.resp.StatusCode < 100 || m.resp.StatusCode > 999 {
			return nil, errors.New(`"@status" needs a response's status code`)
		}
		return strconv.AppendInt(dst, int64(m.resp.StatusCode), 10), nil
	}
	if m.resp != nil && !c.req {
		return nil, fmt.Errorf("%s names the request: want ;req", c.id)
	}
	start := len(dst)
	switch c.name {
	case "@method":
		method := r.Method
		if method == "" {
			method = http.MethodGet
		}
		dst = append(dst, method...)
	case "@target-uri":
		dst = appendScheme(dst, r)
		dst = append(dst, "://"...)
		dst = appendAuthority(dst, r)
		dst = appendRequestTarget(dst, r)
	case "@authority":
		dst = appendAuthority(dst, r)
	case "@scheme":
		dst = appendScheme(dst, r)
	case "@request-target":
		dst = appendRequestTarget(dst, r)
	case "@path":
		if r.URL.Opaque != "" {
			return nil, errors.New(`"@path" of an opaque URL`)
		}
		path := r.URL.EscapedPath()
		if path == "" {
			path = "/"
		}
		dst = append(dst, path...)
	case "@query":
		dst = append(dst, '?')
		dst = append(dst, r.URL.RawQuery...)
	case "@query-param":
		var err error
		if dst, err = appendQueryParam(dst, r.URL.RawQuery, c.qname); err != nil {
			return nil, err
		}
	}
	for _, b := range dst[start:] {
		if b < 0x20 || b >= 0x7f {
			return nil, fmt.Errorf("%s has a character a signature base cannot hold", c.id)
		}
	}
	return dst, nil
}

// requestHost is the authority a request is sent to, as given.
func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return r.URL.Host
}

// appendScheme appends r's scheme in lower case; a request read by a
// server has none, and is https here.
func appendScheme(dst []byte, r *http.Request) []byte {
	if r.URL.Scheme == "" {
		return append(dst, "https"...)
	}
	return appendLower(dst, r.URL.Scheme)
}

// appendAuthority appends r's authority normalised as RFC 9110 section
// 4.2.3 says: the host in lower case, without the scheme's default port.
func appendAuthority(dst []byte, r *http.Request) []byte {
	host := requestHost(r)
	host = strings.TrimSuffix(host, ":")
	if strings.EqualFold(r.URL.Scheme, "http") {
		host = strings.TrimSuffix(host, ":80")
	} else {
		host = strings.TrimSuffix(host, ":443")
	}
	return appendLower(dst, host)
}

// appendRequestTarget appends r's path and query, as sent.
func appendRequestTarget(dst []byte, r *http.Request) []byte {
	if r.URL.Opaque != "" {
		return append(dst, r.URL.RequestURI()...)
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	dst = append(dst, path...)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		dst = append(dst, '?')
		dst = append(dst, r.URL.RawQuery...)
	}
	return dst
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendFieldValue appends a field's values as RFC 9421 section 2.1
// combines them: each trimmed, joined by ", ". A value holding a control
// character or a byte outside ASCII is refused.
func appendFieldValue(dst []byte, values []string) ([]byte, error) {
	for i, v := range values {
		v = strings.Trim(v, " \t")
		for j := 0; j < len(v); j++ {
			if c := v[j]; c < 0x20 && c != '\t' || c >= 0x7f {
				return nil, errors.New("a field value holds a control character or a byte outside ASCII")
			}
		}
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, v...)
	}
	return dst, nil
}

// appendQueryParam appends the value of the query parameter that name
// (encoded) names, parsed and encoded again as RFC 9421 section 2.2.8 says.
// A parameter absent, or present more than once, is an error.
func appendQueryParam(dst []byte, rawQuery, name string) ([]byte, error) {
	want := formEncode(nil, formDecode(name))
	var value string
	found := 0
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if string(formEncode(nil, formDecode(k))) == string(want) {
			found++
			value = v
		}
	}
	switch found {
	case 0:
		return nil, fmt.Errorf("no query parameter %q", name)
	case 1:
		return formEncode(dst, formDecode(value)), nil
	}
	return nil, fmt.Errorf("query parameter %q given %d times", name, found)
}

// formDecode decodes an application/x-www-form-urlencoded name or value as
// the WHATWG URL standard does: "+" is a space, and a "%" not followed by
// two hex digits stays as it is.
func formDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

// formEncode percent-encodes b with the application/x-www-form-urlencoded
// set, a space as %20.
func formEncode(dst, b []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("*-._", c) >= 0 {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// parsedSignature is one signature of a message, as its Signature-Input
// and Signature fields give it.
type parsedSignature struct {
	label                  string
	comps                  []component
	params                 []byte // the inner list strictly serialised: @signature-params
	created, expires       int64
	hasCreated, hasExpires bool
	keyID, alg, tag        string
	sig                    []byte
	err                    error // well-formed, but not verifiable here
}

func (p *parsedSignature) covers(c component) bool { return containsComponent(p.comps, c) }

// parseSignatures reads a message's Signature-Input and Signature fields
// strictly (RFC 9421 section 4): malformed, oversized or duplicated
// members or parameters, or a label in one field only, are errors.
func parseSignatures(inputs, sigs []string) ([]*parsedSignature, error) {
	in, err := parseDictionary(inputs, "Signature-Input", maxSignatureField, maxSignatures)
	if err != nil {
		return nil, err
	}
	sd, err := parseDictionary(sigs, "Signature", maxSignatureField, maxSignatures)
	if err != nil {
		return nil, err
	}
	if len(in.Names()) != len(sd.Names()) {
		return nil, errors.New("the Signature-Input and Signature fields name different signatures")
	}
	out := make([]*parsedSignature, 0, len(in.Names()))
	for _, label := range in.Names() {
		member, _ := in.Get(label)
		list, ok := member.(httpsfv.InnerList)
		if !ok {
			return nil, fmt.Errorf("signature %q: the Signature-Input member is not an inner list", label)
		}
		if len(label) > maxSigLabelLen {
			return nil, fmt.Errorf("a signature label of %d bytes, over the limit of %d", len(label), maxSigLabelLen)
		}
		if len(list.Items) > maxComponents {
			return nil, fmt.Errorf("signature %q covers %d components, over the limit of %d", label, len(list.Items), maxComponents)
		}
		p := &parsedSignature{label: label}
		for _, it := range list.Items {
			if _, ok := it.Value.(string); !ok {
				return nil, fmt.Errorf("signature %q lists a component that is not a string", label)
			}
			c := componentFromItem(it)
			if p.err == nil && c.err == nil && containsComponent(p.comps, c) {
				p.err = fmt.Errorf("covers %s twice", c.id)
			}
			if p.err == nil {
				p.err = c.err
			}
			p.comps = append(p.comps, c)
		}
		if err := p.readParams(list.Params); err != nil {
			return nil, fmt.Errorf("signature %q: %w", label, err)
		}
		serialised, err := httpsfv.Marshal(list)
		if err != nil {
			return nil, fmt.Errorf("signature %q: %v", label, err)
		}
		p.params = []byte(serialised)
		sm, ok := sd.Get(label)
		if !ok {
			return nil, fmt.Errorf("no Signature for label %q", label)
		}
		it, ok := sm.(httpsfv.Item)
		sig, isBytes := it.Value.([]byte)
		if !ok || !isBytes {
			return nil, fmt.Errorf("signature %q: the Signature member is not a byte sequence", label)
		}
		if len(sig) == 0 || len(sig) > maxSignatureBytes {
			return nil, fmt.Errorf("signature %q: a value of %d bytes", label, len(sig))
		}
		p.sig = sig
		out = append(out, p)
	}
	return out, nil
}

// readParams reads a signature's parameters, each of the type RFC 9421
// section 2.3 gives it; others are ignored.
func (p *parsedSignature) readParams(params *httpsfv.Params) error {
	if params == nil {
		return nil
	}
	for _, name := range params.Names() {
		v, _ := params.Get(name)
		var ok bool
		switch name {
		case "created":
			p.created, ok = v.(int64)
			p.hasCreated = true
		case "expires":
			p.expires, ok = v.(int64)
			p.hasExpires = true
		case "keyid":
			p.keyID, ok = v.(string)
		case "alg":
			p.alg, ok = v.(string)
		case "tag":
			p.tag, ok = v.(string)
		case "nonce":
			_, ok = v.(string)
		default:
			ok = true
		}
		if !ok {
			return fmt.Errorf("parameter %q of the wrong type", name)
		}
	}
	return nil
}

// parseDictionary parses the lines of a Dictionary field, refusing one
// longer than limit bytes, with more than members members, with a member
// or a parameter given twice (which RFC 9651 would silently merge), or
// empty.
func parseDictionary(lines []string, name string, limit, members int) (*httpsfv.Dictionary, error) {
	size := 0
	for _, l := range lines {
		size += len(l) + 2
	}
	if size > limit+2 {
		return nil, fmt.Errorf("%s field of %d bytes, over the limit of %d", name, size-2, limit)
	}
	joined := strings.Join(lines, ", ")
	d, err := httpsfv.UnmarshalDictionary([]string{joined})
	if err != nil {
		return nil, fmt.Errorf("malformed %s field: %v", name, err)
	}
	n := len(d.Names())
	if n == 0 {
		return nil, fmt.Errorf("empty %s field", name)
	}
	if n > members {
		return nil, fmt.Errorf("%s field with %d members, over the limit of %d", name, n, members)
	}
	// Outside strings, commas separate the members and semicolons open
	// parameters, and nothing else: fewer of either in the parse than in
	// the text means one was given twice.
	commas, semis := 0, 0
	for i := 0; i < len(joined); i++ {
		switch joined[i] {
		case '"':
			for i++; i < len(joined) && joined[i] != '"'; i++ {
				if joined[i] == '\\' {
					i++
				}
			}
		case ',':
			commas++
		case ';':
			semis++
		}
	}
	if commas+1 != n {
		return nil, fmt.Errorf("%s field names a member twice", name)
	}
	if paramCount(d) != semis {
		return nil, fmt.Errorf("%s field gives a parameter twice", name)
	}
	return d, nil
}

// paramCount counts the parameters of a dictionary's members and of their
// items.
func paramCount(d *httpsfv.Dictionary) int {
	count := func(p *httpsfv.Params) int {
		if p == nil {
			return 0
		}
		return len(p.Names())
	}
	n := 0
	for _, name := range d.Names() {
		m, _ := d.Get(name)
		switch m := m.(type) {
		case httpsfv.Item:
			n += count(m.Params)
		case httpsfv.InnerList:
			n += count(m.Params)
			for _, it := range m.Items {
				n += count(it.Params)
			}
		}
	}
	return n
}

// parseContentDigest reads a Content-Digest field (RFC 9530 section 2):
// its sha-256 and sha-512 digests, at least one; other algorithms are
// ignored.
func parseContentDigest(lines []string) ([]contentDigest, error) {
	if len(lines) == 0 {
		return nil, errors.New("no Content-Digest field")
	}
	d, err := parseDictionary(lines, "Content-Digest", maxDigestField, maxSignatures)
	if err != nil {
		return nil, err
	}
	var out []contentDigest
	for _, alg := range d.Names() {
		m, _ := d.Get(alg)
		var size int
		switch alg {
		case "sha-256":
			size = sha256.Size
		case "sha-512":
			size = sha512.Size
		default:
			continue
		}
		it, ok := m.(httpsfv.Item)
		b, isBytes := it.Value.([]byte)
		if !ok || !isBytes || len(b) != size {
			return nil, fmt.Errorf("the Content-Digest %s is not a %d-byte sequence", alg, size)
		}
		c := contentDigest{alg: alg, want: b, h: sha256.New()}
		if size == sha512.Size {
			c.h = sha512.New()
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("the Content-Digest field has no sha-256 or sha-512 digest")
	}
	return out, nil
}

// sfStringSafe reports whether s fits in a structured field String.
func sfStringSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// sfQuote serialises s, which sfStringSafe accepted, as a String.
func sfQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// sfKey reports whether s is a structured field key, as a label must be.
func sfKey(s string) bool {
	if s == "" || len(s) > maxSigLabelLen || !('a' <= s[0] && s[0] <= 'z' || s[0] == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("_-.*", c) >= 0) {
			return false
		}
	}
	return true
}
