package securehttp

// Naming failures and explaining them: the one classifier that retries,
// hooks, logs and the command use, and the errors that say where a request
// failed and the way out.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"syscall"
)

// HTTP/2 error codes (RFC 9113 section 7) after which a request that got no
// answer may be sent again: the server failed, or refused the stream
// before it began.
const (
	h2Internal      = 0x2
	h2RefusedStream = 0x7
)

// ErrorClass names the failure err stands for, as hook events and logs do,
// by its type and never its text: "timeout", "connection_refused",
// "connection_reset", "connection_closed", "stream_reset", "goaway", "dns",
// "certificate", "tls", "weak_key", "pin_mismatch", "not_pinned", "revoked",
// "ocsp_staple", "insecure_scheme", "host_not_allowed", "blocked_address",
// "token_unavailable", "oauth_error", "request_body", "response_body" (the
// server answered, then its body failed), "response_signature",
// "canceled", or "error" for any other. It returns "" for nil.
func ErrorClass(err error) string {
	if err == nil {
		return ""
	}
	return classify(err).class
}

// failure is what classify makes of an error: a class that names it in
// logs, hook events and the command, and whether another attempt may
// succeed.
type failure struct {
	class     string
	transient bool
}

// classify is the one judge of a failed attempt's error. It goes by the
// error's type, never by its text, and fails fast on anything it does not
// recognise; certificate, pin, scheme, token, request body, response
// signature and cancellation errors are never transient: a response whose
// signature fails is not a server's passing trouble, and sending again to
// whatever altered it would only spend the budget.
//
// The request's own deadline is checked by judge before this: it cannot be
// told from err, since net/http's and net's timeouts (dial, response
// headers) also match context.DeadlineExceeded, and those are transient.
func classify(err error) failure {
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		rootsErr   x509.SystemRootsError
		opErr      *net.OpError
		refreshErr *RefreshError
		oauthErr   *OAuthError
		bodyErr    *bodyError
		answered   *answeredError
		dnsErr     *net.DNSError
		streamErr  h2StreamError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		return failure{"canceled", false}
	case errors.Is(err, ErrPinMismatch):
		return failure{"pin_mismatch", false}
	case errors.Is(err, ErrNotPinned):
		return failure{"not_pinned", false}
	case errors.Is(err, ErrWeakKey):
		return failure{"weak_key", false}
	case errors.Is(err, ErrRevoked):
		return failure{"revoked", false}
	case errors.Is(err, ErrOCSPStaple):
		return failure{"ocsp_staple", false}
	case errors.Is(err, ErrInsecureScheme):
		return failure{"insecure_scheme", false}
	case errors.Is(err, ErrHostNotAllowed):
		return failure{"host_not_allowed", false}
	case errors.Is(err, ErrBlockedAddress):
		return failure{"blocked_address", false}
	case errors.Is(err, ErrResponseSignature):
		return failure{"response_signature", false}
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return failure{"certificate", false}
	case errors.As(err, &rootsErr):
		return failure{"certificate", false}
	case errors.As(err, &recordErr), errors.As(err, &alertErr), errors.Is(err, http.ErrSchemeMismatch),
		errors.As(err, &opErr) && opErr.Op == "remote error":
		// An alert from the server reaches the client as a *net.OpError
		// whose error type crypto/tls does not export; crypto/tls marks it
		// with this Op, a field rather than a message.
		return failure{"tls", false}
	case errors.As(err, &refreshErr):
		return failure{"token_unavailable", false}
	case errors.As(err, &oauthErr):
		return failure{"oauth_error", false}
	case errors.As(err, &bodyErr):
		return failure{"request_body", false}
	case errors.As(err, &answered) && !errors.Is(err, context.DeadlineExceeded):
		// Not transient: the server answered, and the request may have
		// taken effect. A deadline that ended the read is a timeout.
		return failure{"response_body", false}
	case errors.As(err, &dnsErr):
		return failure{"dns", dnsErr.Timeout()}
	case errors.Is(err, syscall.ECONNREFUSED):
		return failure{"connection_refused", true}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return failure{"connection_reset", true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return failure{"connection_closed", true}
	case errors.As(err, &streamErr):
		return failure{"stream_reset", streamErr.Code == h2Internal || streamErr.Code == h2RefusedStream}
	case isGoAway(err):
		return failure{"goaway", true}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return failure{"timeout", true}
	}
	return failure{"error", false}
}

// h2StreamError has the shape of an HTTP/2 stream error (RST_STREAM), as
// golang.org/x/net/http2.StreamError has. net/http's own HTTP/2 client
// exports no type for it, but its stream error converts itself, for
// errors.As, into any struct of this shape.
type h2StreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamError) Error() string { return "http2 stream error" }

// isGoAway reports whether err is the error of a request whose connection
// the server closed after a GOAWAY frame, without answering it. net/http's
// own HTTP/2 client returns it as a value of an unexported type that, unlike
// its stream error, converts into nothing, so it is known here by its type's
// package and name; TestRetryHTTP2Resets fails if a Go release renames it.
func isGoAway(err error) bool {
	for _, e := range errorTree(err) {
		if t := reflect.TypeOf(e); t.Kind() == reflect.Struct &&
			(t.PkgPath() == "net/http" && t.Name() == "http2GoAwayError" ||
				t.PkgPath() == "golang.org/x/net/http2" && t.Name() == "GoAwayError") {
			return true
		}
	}
	return false
}

// errorTree returns err and every error it wraps, depth first, as errors.Is
// walks them.
func errorTree(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil || len(out) > maxErrorTree {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return out
}

// maxErrorTree bounds errorTree against an error that wraps itself.
const maxErrorTree = 64

// verifyError is a chain that did not verify, with the host it was for and
// what to do about it.
type verifyError struct {
	host, hint string
	err        error
}

func (e *verifyError) Error() string {
	msg := "securehttp: TLS verification of " + e.host + " failed: " + causeText(e.err)
	if e.hint != "" {
		msg += "; " + e.hint
	}
	return msg
}

func (e *verifyError) Unwrap() error { return e.err }

// explain adds to a request's error what the user needs to act on it: the
// host and port, and the way out (trusting a private CA, printing the
// chain's pins), and how many attempts were made when there was more than
// one. The error stays what it was for errors.Is and errors.As.
func (t *transport) explain(x *exchange, err error) error {
	if err == nil {
		return nil
	}
	err = t.wayOut(x.req.URL, x.role, err)
	if x.tries > 1 {
		err = wrap(fmt.Sprintf("securehttp: giving up after %d attempts", x.tries), err)
	}
	return err
}

// wayOut returns err, or, for a chain that did not verify or matched no
// pin, err with the address it was for (its role when it was not the
// request's own host, as "the token endpoint") and a command that shows the
// chain as printed: with --cacert when the client trusts roots of its own.
// An error that already says so, as a failed token refresh does for the
// token endpoint, is returned as it is: it did not happen at u.
func (t *transport) wayOut(u *url.URL, role string, err error) error {
	if isHinted(err) {
		return err
	}
	addr := hostPort(u)
	where := addr
	if role != "" {
		where = role + " " + addr
	}
	pins := "securehttp pins https://" + addr + "/"
	if t.customRoots {
		pins = "securehttp pins --cacert FILE https://" + addr + "/"
	}
	if _, ok := errors.AsType[*PinError](err); ok {
		return &hintError{what: "at " + where, hint: `"` + pins + `" prints the chain's pins`, err: err}
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		v := &verifyError{host: where, err: err}
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
			v.hint = "to trust a private CA, add its root to Config.RootCAs (with the securehttp command, --cacert FILE)"
		}
		return v
	}
	return err
}

// isHinted reports whether err, or an error it wraps, already says where
// it happened and the way out (wayOut did).
func isHinted(err error) bool {
	for _, e := range errorTree(err) {
		switch e.(type) {
		case *hintError, *verifyError:
			return true
		}
	}
	return false
}

// hintError is err, said where it happened and with the way out.
type hintError struct {
	what, hint string
	err        error
}

func (e *hintError) Error() string {
	return "securehttp: " + causeText(e.err) + " (" + e.what + "); " + e.hint
}

func (e *hintError) Unwrap() error { return e.err }
