package securehttptest

import (
	"crypto"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// Option configures a certificate (CA.Issue, Server.Rotate), a server
// (NewServer), an authorization server (NewAuthServer) or a JWT of an
// Issuer (Issuer.Token, Issuer.TokenFile, TokenFile.Rotate). Each option's
// comment says where it applies; given anywhere else, it fails the test.
// Of two options that set the same thing, the later wins.
type Option struct {
	name  string
	where target
	set   func(*settings) error
}

// target is the set of calls that an option applies to.
type target uint8

const (
	toIssue  target = 1 << iota // CA.Issue
	toRotate                    // Server.Rotate
	toServer                    // NewServer
	toAuth                      // NewAuthServer
	toToken                     // Issuer.Token, Issuer.TokenFile, TokenFile.Rotate

	toServers = toServer | toAuth
	toCert    = toIssue | toRotate | toServers
)

// settings is what a call's options add up to.
type settings struct {
	// cert describes a certificate; its validity period is also the
	// window of an Issuer's JWT.
	cert certSettings

	ca                *CA
	requireClientCert bool

	auth authSettings
}

// certSettings describe one certificate.
type certSettings struct {
	hosts               []string
	key                 crypto.Signer
	weak                bool
	notBefore, notAfter time.Time
	mustStaple          bool
	misIssued           bool
	wrongHost           bool
	staple              staple
}

// staple is the OCSP response a certificate comes with.
type staple uint8

const (
	noStaple staple = iota
	stapleGood
	stapleRevoked
	stapleStale
)

// authSettings describe an authorization server. lifetime is also that
// of an Issuer's JWT.
type authSettings struct {
	lifetime    time.Duration
	method      string
	nonce       bool
	tokenError  *tokenError
	slow        time.Duration
	wrongIssuer bool
	trusted     map[string][]crypto.PublicKey // issuer name → the keys trusted to sign its JWTs
}

// tokenError is the answer of TokenError.
type tokenError struct {
	status int
	code   string
}

// apply applies opts for a call of what (such as "NewServer"), which
// accepts the options of where, and fails t on an option that does not
// apply or does not make sense.
func apply(t testing.TB, where target, what string, opts []Option) settings {
	t.Helper()
	var s settings
	for _, o := range opts {
		if o.set == nil {
			t.Fatalf("securehttptest: %s: a zero Option; make options with the functions of the package", what)
		}
		if o.where&where == 0 {
			t.Fatalf("securehttptest: %s does not apply to %s", o.name, what)
		}
		if err := o.set(&s); err != nil {
			t.Fatalf("securehttptest: %s: %s: %v", what, o.name, err)
		}
	}
	return s
}

// Hosts sets the DNS names and IP addresses that a certificate carries, the
// first also as its common name. A server's URL names the first of them.
// Without Hosts, a certificate is for 127.0.0.1. It applies to CA.Issue,
// NewServer and NewAuthServer.
func Hosts(hosts ...string) Option {
	hosts = append([]string(nil), hosts...)
	return Option{"Hosts", toIssue | toServers, func(s *settings) error {
		if len(hosts) == 0 {
			return errors.New("no host")
		}
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, ":/ ") && net.ParseIP(h) == nil {
				return fmt.Errorf("%q is not a host name or an IP address", h)
			}
		}
		s.cert.hosts = hosts
		return nil
	}}
}

// Key makes the certificate certify key; without it, each certificate has a
// new ECDSA P-256 key. It applies wherever a certificate is made.
func Key(key crypto.Signer) Option {
	return Option{"Key", toCert, func(s *settings) error {
		if key == nil {
			return errors.New("nil key")
		}
		s.cert.key, s.cert.weak = key, false
		return nil
	}}
}

// WeakKey gives the certificate a new 1024-bit RSA key, which securehttp
// refuses with ErrWeakKey. It applies wherever a certificate is made.
func WeakKey() Option {
	return Option{"WeakKey", toCert, func(s *settings) error {
		s.cert.key, s.cert.weak = nil, true
		return nil
	}}
}

// Validity sets the certificate's validity period; without it, a
// certificate is valid from an hour ago for 90 days. It applies wherever a
// certificate is made, and to an Issuer's JWTs, whose iat and nbf it sets
// to notBefore and exp to notAfter.
func Validity(notBefore, notAfter time.Time) Option {
	return Option{"Validity", toCert | toToken, func(s *settings) error {
		if !notAfter.After(notBefore) {
			return fmt.Errorf("notAfter %v is not after notBefore %v", notAfter, notBefore)
		}
		s.cert.notBefore, s.cert.notAfter = notBefore, notAfter
		return nil
	}}
}

// Expired makes a certificate that expired a day ago: a
// *tls.CertificateVerificationError holding an x509.CertificateInvalidError
// whose Reason is x509.Expired. It applies wherever a certificate is made,
// and to an Issuer's JWTs, which an AuthServer refuses (invalid_grant, or
// invalid_request for a token to exchange).
func Expired() Option {
	return Option{"Expired", toCert | toToken, func(s *settings) error {
		now := time.Now()
		s.cert.notBefore, s.cert.notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
		return nil
	}}
}

// NotYetValid makes a certificate valid from tomorrow: the error of
// Expired, as crypto/x509 gives one reason for both. It applies wherever a
// certificate is made, and to an Issuer's JWTs, refused as expired ones.
func NotYetValid() Option {
	return Option{"NotYetValid", toCert | toToken, func(s *settings) error {
		now := time.Now()
		s.cert.notBefore, s.cert.notAfter = now.Add(24*time.Hour), now.Add(48*time.Hour)
		return nil
	}}
}

// WrongHost makes the server's certificate name a host other than the
// server's: a *tls.CertificateVerificationError holding an
// x509.HostnameError. It applies to NewServer, NewAuthServer and
// Server.Rotate.
func WrongHost() Option {
	return Option{"WrongHost", toRotate | toServers, func(s *settings) error {
		s.cert.wrongHost = true
		return nil
	}}
}

// MustStaple marks the certificate OCSP must-staple (RFC 7633): a server
// that staples no response with it is refused with ErrOCSPStaple. It
// applies wherever a certificate is made.
func MustStaple() Option {
	return Option{"MustStaple", toCert, func(s *settings) error {
		s.cert.mustStaple = true
		return nil
	}}
}

// MisIssued has the certificate issued by another intermediate of the CA's
// root, as a certificate mis-issued by a trusted CA would be: its chain
// verifies, and matches none of the pins of Config and CA.Pins
// (ErrPinMismatch). It applies wherever a certificate is made.
func MisIssued() Option {
	return Option{"MisIssued", toCert, func(s *settings) error {
		s.cert.misIssued = true
		return nil
	}}
}

// StapleOCSP staples a good OCSP response, signed by the certificate's
// issuer and valid for a day, to the certificate. It applies wherever a
// certificate is made: a certificate from CA.Issue carries it in its
// TLSCertificate.
func StapleOCSP() Option { return stapleOption("StapleOCSP", stapleGood) }

// StapleRevoked staples an OCSP response that revokes the certificate:
// ErrRevoked. It applies wherever a certificate is made.
func StapleRevoked() Option { return stapleOption("StapleRevoked", stapleRevoked) }

// StapleStale staples a good OCSP response whose nextUpdate passed a day
// ago: ErrOCSPStaple. It applies wherever a certificate is made.
func StapleStale() Option { return stapleOption("StapleStale", stapleStale) }

func stapleOption(name string, st staple) Option {
	return Option{name, toCert, func(s *settings) error {
		s.cert.staple = st
		return nil
	}}
}

// RequireClientCert makes the server require a client certificate from its
// CA; without it, a server asks for one and verifies any it is given. A
// client without one fails its handshake: a *net.OpError whose Op is
// "remote error". It applies to NewServer and NewAuthServer.
func RequireClientCert() Option {
	return Option{"RequireClientCert", toServers, func(s *settings) error {
		s.requireClientCert = true
		return nil
	}}
}

// WithCA makes the server's certificate, and the client certificates it
// accepts, those of ca; without it, servers share one CA, made on first use,
// so that a client made from one server's Config reaches the others. It
// applies to NewServer and NewAuthServer.
func WithCA(ca *CA) Option {
	return Option{"WithCA", toServers, func(s *settings) error {
		if ca == nil {
			return errors.New("nil CA")
		}
		s.ca = ca
		return nil
	}}
}

// TokenLifetime sets the lifetime of the tokens the server issues, in whole
// seconds and at least one; without it, an hour. It applies to
// NewAuthServer, and to an Issuer's JWTs, unless Validity, Expired or
// NotYetValid set their window.
func TokenLifetime(d time.Duration) Option {
	return Option{"TokenLifetime", toAuth | toToken, func(s *settings) error {
		if d < time.Second {
			return fmt.Errorf("%v is under a second", d)
		}
		s.auth.lifetime = d
		return nil
	}}
}

// ClientAuth sets how the client of ClientCredentials authenticates, and
// the only way the server accepts: "client_secret_basic" (the default),
// "private_key_jwt", "tls_client_auth", or "none" for a public client,
// which does not authenticate and may not use the client credentials grant
// (unauthorized_client). It applies to NewAuthServer.
func ClientAuth(method string) Option {
	return Option{"ClientAuth", toAuth, func(s *settings) error {
		switch method {
		case methodBasic, methodPrivateKeyJWT, methodTLS, methodNone:
			s.auth.method = method
			return nil
		}
		return fmt.Errorf("unknown method %q: want %q, %q, %q or %q", method, methodBasic, methodPrivateKeyJWT, methodTLS, methodNone)
	}}
}

// TrustIssuer makes the server trust the JWTs whose iss is name and that
// key signed, an ECDSA, Ed25519 or RSA (2048 bits or more) public key such
// as an Issuer's Key().Public(): as the JWT bearer grant's assertion and a
// token exchange's subject and actor tokens. Given more than once, the
// server trusts each key given. It applies to NewAuthServer.
func TrustIssuer(name string, key crypto.PublicKey) Option {
	return Option{"TrustIssuer", toAuth, func(s *settings) error {
		if name == "" {
			return errors.New("empty issuer name")
		}
		if err := checkPublicKey(key); err != nil {
			return err
		}
		if s.auth.trusted == nil {
			s.auth.trusted = map[string][]crypto.PublicKey{}
		}
		s.auth.trusted[name] = append(s.auth.trusted[name], key)
		return nil
	}}
}

// DPoPNonce makes the token endpoint require a server nonce in DPoP proofs
// (RFC 9449 section 8): a proof without it is answered use_dpop_nonce, with
// the nonce. It applies to NewAuthServer.
func DPoPNonce() Option {
	return Option{"DPoPNonce", toAuth, func(s *settings) error {
		s.auth.nonce = true
		return nil
	}}
}

// TokenError makes the token endpoint answer every request with status and
// the OAuth error code (RFC 6749 section 5.2), such as 401
// "invalid_client" (ErrNoToken with an *OAuthError) or 503
// "temporarily_unavailable" (ErrNoToken, after the client's retries). It
// applies to NewAuthServer.
func TokenError(status int, code string) Option {
	return Option{"TokenError", toAuth, func(s *settings) error {
		if status < 400 || status > 599 {
			return fmt.Errorf("status %d is not an error status", status)
		}
		if code == "" {
			return errors.New("empty error code")
		}
		s.auth.tokenError = &tokenError{status, code}
		return nil
	}}
}

// Slow makes the token endpoint wait d before it answers, or until the
// client gives up: a client whose Bearer.RefreshTimeout is shorter fails
// with ErrNoToken and context.DeadlineExceeded. It applies to
// NewAuthServer.
func Slow(d time.Duration) Option {
	return Option{"Slow", toAuth, func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("%v is not a wait", d)
		}
		s.auth.slow = d
		return nil
	}}
}

// WrongIssuer makes the server's metadata name its issuer with a trailing
// slash, which RFC 8414 section 3.3 makes a different issuer: the client
// refuses it with ErrIssuerMismatch and asks for no token. It applies to
// NewAuthServer.
func WrongIssuer() Option {
	return Option{"WrongIssuer", toAuth, func(s *settings) error {
		s.auth.wrongIssuer = true
		return nil
	}}
}
