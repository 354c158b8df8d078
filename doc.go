// Package securehttp is a hardened HTTPS client for API calls that carry
// bearer tokens. NewClient returns an ordinary *http.Client, so code written
// for net/http keeps working: HTTP/2, proxies from the environment, context
// cancellation, CheckRedirect, cookie jars and CloseIdleConnections.
//
// Underneath, its Transport:
//
//   - contacts only the hosts of Config.AllowHosts, when set, on the first
//     request, on every redirect hop and for token requests
//     (ErrHostNotAllowed), and with Config.BlockPrivateNetworks refuses to
//     connect to any address that is not public unicast, judged on the
//     address actually dialled (ErrBlockedAddress);
//   - refuses any scheme but https before a connection is made, on the first
//     request and on every redirect hop (ErrInsecureScheme);
//   - verifies every connection with crypto/x509 against Config.RootCAs or
//     the system roots (trust, host name, the validity of every certificate
//     in the chain), requires TLS 1.2 or later, and refuses RSA keys under
//     2048 bits and EC keys under 256 bits anywhere in the verified chain
//     (ErrWeakKey). Nothing turns this off;
//   - checks Config.Pins against the verified chains, never against what the
//     server merely sent, on full and resumed handshakes alike
//     (ErrPinMismatch, *PinError);
//   - verifies a stapled OCSP response and refuses a revoked certificate
//     (ErrRevoked, ErrOCSPStaple);
//   - attaches the token of Config.Bearer to the hosts it names and to no
//     other, refreshes it ahead of expiry with a single Refresh call however
//     many requests wait, and recovers once from a 401 (*RefreshError);
//     with Bearer.DPoP, binds the token to a key and signs a fresh proof for
//     every attempt (RFC 9449), answering a server's nonce request once;
//   - retries idempotent requests on connection errors and on 408, 429, 500,
//     502, 503 and 504, using github.com/hashicorp/go-retryablehttp as its
//     engine, honouring Retry-After up to a cap, and never retrying
//     certificate, pin, scheme, token or context failures.
//
// # Quick start
//
//	client, err := securehttp.NewClient(securehttp.Config{
//		Pins: []securehttp.PinSet{{
//			Host: "api.example.com",
//			Pins: []string{
//				"sha256/r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E=", // current key
//				"sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=", // backup key
//			},
//		}},
//		Bearer: &securehttp.Bearer{
//			Refresh: fetchToken, // func(context.Context) (securehttp.Token, error)
//			Hosts:   []string{"api.example.com"},
//		},
//	})
//	if err != nil {
//		return err // a *ConfigError naming the bad entry
//	}
//	resp, err := client.Get("https://api.example.com/v1/things")
//
// # Pins
//
// A pin is "sha256/<base64>", the SHA-256 of a certificate's
// SubjectPublicKeyInfo (RFC 7469, OkHttp's form), or the SHA-256 fingerprint
// of a whole certificate in hex as `openssl x509 -fingerprint -sha256`
// prints it; curl's "sha256//…", HPKP's pin-sha256="…" and openssl's whole
// "sha256 Fingerprint=…" line are read as pasted. A connection passes when
// any certificate of any verified chain (leaf, intermediate, or a root the
// server did not send) matches any pin of the enforced sets whose Host
// matches. Pin a key you control and keep a backup pin, so that a rotation
// does not lock clients out; a set with a single pin is logged as a warning.
// PinSet.Expires ends a set's enforcement; PinSet.ReportOnly reports
// mismatches through Config.Logger and Config.OnPinFailure without refusing
// the connection.
//
// Hosts are matched as the URL spells them: an IP address and a name of the
// same server are different hosts, and so are two names of it, since only
// DNS, which an attacker may forge, says they are the same. A connection to
// a host no PinSet covers, and a request to a host outside Bearer.Hosts,
// each log a Debug event. Host patterns (PinSet.Host, Bearer.Hosts,
// AllowHosts) are validated strictly, so that a typo is a *ConfigError
// rather than a pattern that silently matches nothing.
//
// # Tokens
//
// A Token is a value and its expiry. Bearer.Store keeps it (NewMemoryStore,
// or NewFileStore for one that survives restarts and is shared between
// processes). New tokens come from Bearer.ClientCredentials, an OAuth 2.0
// client credentials flow with discovery and private_key_jwt or
// client_secret_basic, or from the caller's Bearer.Refresh; OAuth2Refresh
// adapts a golang.org/x/oauth2 TokenSource.
//
// A token's expiry is Token.Expiry, or a JWT's exp claim read without
// verifying its signature (unless Bearer.Keyfunc is set, in which case only
// a JWT that verifies is accepted), whichever is earlier. An opaque token
// without an Expiry is used until a server answers 401. Inside the refresh
// window a single background refresh runs while requests go on with the
// still-valid token; once the token is expired, requests wait for that one
// refresh, each bounded by its own context and by Bearer.RefreshTimeout,
// even when Refresh ignores its context. After a failed refresh, requests
// fail fast with its error until a backoff has passed. Before calling
// Refresh the store is read again, since another process may have refreshed
// already. A 401 with no challenge, or with a Bearer challenge whose error
// is invalid_token or absent, invalidates the token that request carried;
// the request is replayed once with a new token when its body can be
// replayed (no body, or GetBody set). Refreshes caused by 401s are spaced by
// the same backoff, so a server that refuses every token costs at most one
// refresh per backoff. The token goes only to https requests whose host
// matches Bearer.Hosts; every redirect hop is judged anew. An entry without a
// port covers every port of its hosts, as net/http does for the headers it
// copies on redirects; "host:port" restricts it to one port. A request that
// already has an Authorization header is left alone.
//
// The exact expiry guarantee: a token is attached when the request enters
// the Transport, and only while at least min(lifetime/10, 5 s) of its life
// remains. It reaches the server after that margin only if the request then
// waits longer than the margin for a connection (a new dial and TLS
// handshake, bounded by DialTimeout and TLSHandshakeTimeout, or a proxy). A
// server that must never see an expired token should use a lifetime whose
// tenth exceeds those bounds.
//
// Logs carry refresh start and success (Debug) and failure (Warn), never a
// token. Token, Bearer, ClientCredentials, MemoryStore and Transport print
// no secret with any fmt verb, nor as slog values.
//
// # Retries
//
// RetryPolicy's zero value means 3 retries, backoff with full jitter between
// 200 ms and 5 s, and Retry-After (seconds or an HTTP date, on 429 and 503)
// honoured up to 30 s; a longer Retry-After returns the response at once.
// Only GET, HEAD, OPTIONS, TRACE, PUT and DELETE are retried, or any method
// carrying an Idempotency-Key header, and only when the body can be replayed
// through GetBody: a body without GetBody is streamed, never buffered, and
// sent once. When retries run out the last response is returned with a nil
// error and its body intact, as net/http would return it. Each retry is
// logged at Debug with the URL stripped of its query and userinfo.
//
// Every resend to a host (a retry, a replay after a 401 or a DPoP nonce
// challenge) is paid for from that host's retry budget: RetryPolicy.Budget
// (by default a fifth) of the requests sent to it over the last 10 seconds,
// and at least 10 resends per second. Once it is spent the last response or
// error is returned as it is, so that against a server failing everything
// 400 requests cost about 480 attempts, not 1600. WithoutRetries and
// WithoutToken turn retries or the token off for one request.
//
// # Hooks
//
// Config.Hooks receives events (attempts, retries, budget exhaustion,
// refreshes, token endpoint calls, handshakes, pin failures, expiring
// certificates) whose fields hold no secret: URLs lose their query and
// userinfo, and failures are named by class, never by an error's text. A
// nil *Hooks costs nothing. The subpackage otelsecurehttp turns them into
// OpenTelemetry spans and metrics; this package imports no telemetry
// library.
//
// # Client certificates
//
// LoadClientCert loads a certificate and key from PEM files and reloads
// them when they change; pass its GetClientCertificate method as
// Config.GetClientCertificate. After a rotation requests go out on new
// connections, no TLS session of the old certificate is resumed, and a
// bearer token bound to it (RFC 8705) is replaced before the next request.
// With Bearer.ClientCredentials and neither Key nor ClientSecret, token
// requests authenticate with the certificate (tls_client_auth). Tokens are
// kept under the certificate's binding in a store shared by replicas
// (BindingStore), and a JWT bound to another certificate (cnf["x5t#S256"])
// is never sent.
//
// # Threat model
//
// securehttp defends against:
//
//   - anyone on the network path: plain HTTP is never sent, TLS 1.2 is the
//     floor, and the chain and host name are always verified;
//   - a mis-issued but publicly trusted certificate, when the host is pinned;
//     pins are matched against the verified chain only, so appending a pinned
//     certificate to a chain that verifies through another root does not
//     pass (OkHttp's CVE-2016-2402);
//   - a redirect to another host or to http://, which never receives the
//     token (a downgrade is an error, not a silent follow), and a Host
//     header naming a host outside Bearer.Hosts, which gets no token either
//     (a front end that routes by Host would hand it to that host);
//   - a hostile authorization server's lies: metadata naming another issuer
//     (a mix-up), a plain-HTTP token endpoint, a redirect, a stalled or
//     endless response, a downgrade from DPoP to a plain bearer token;
//   - secrets leaking into logs, errors, formatted values and telemetry:
//     hooks, and so OpenTelemetry, get no token, proof, cookie, query string
//     or userinfo;
//   - retries amplifying an outage: each host's resends are bounded by a
//     retry budget;
//   - a revoked certificate, when the server staples an OCSP response;
//   - a token that leaks after it arrives (a log, a proxy, a compromised
//     server), when Bearer.DPoP binds it to a key that never leaves the
//     process (RFC 9449): without a fresh proof signed by that key, for that
//     method and URL, the token is refused;
//   - a stolen access token, when it is bound to the client certificate
//     (RFC 8705): it is useless without the certificate's key, and after a
//     rotation no connection, TLS session or bound token of the old
//     certificate is used again;
//   - another local user planting or swapping the token file: FileStore
//     follows no symbolic link, opens a FIFO or device without blocking
//     and refuses it, and refuses a file that others can read or that
//     another user owns;
//   - anyone who can read or write a shared token store (redisstore) without
//     its EncryptionKey: records are sealed with AES-256-GCM and bound to
//     their key and generation, so such a writer cannot read, plant or move
//     a token; it can make replicas refresh on their own, or put back an
//     older record of the same key, whose token is used only while still
//     valid;
//   - server-side request forgery, with AllowHosts and BlockPrivateNetworks:
//     a URL, a redirect or a token endpoint pointing at another host, at
//     cloud metadata (169.254.169.254, fd00:ec2::254) or at any private,
//     loopback, link-local or special-purpose address of the IANA
//     registries, in any spelling (v4-mapped, NAT64, 6to4, "2130706433").
//     DNS rebinding is handled: the address checked is the one dialled,
//     after resolution, not the one a name had when it was first looked up.
//
// It does not defend against:
//
//   - a compromised client machine, process or token store: whoever can read
//     process memory or the token file has the token;
//   - a compromised server, or a trusted CA misissuing for a host that is
//     not pinned;
//   - revocation without a staple: it fetches no CRL and queries no OCSP
//     responder;
//   - a server that leaks the token it receives, or a token replayed by its
//     legitimate recipient (bind tokens to their audience on the server), unless
//     Bearer.DPoP binds the token; even then, a proof lives about a minute
//     (iat) and a server that does not track jti or demand nonces accepts
//     a captured proof again for the same method and URL;
//   - traffic analysis: TLS hides content, not sizes, timing or the server
//     name sent in SNI;
//   - an Authorization header the caller sets itself, which net/http
//     forwards on redirects within the same domain;
//   - through a proxy, a target name that resolves to a private address:
//     the proxy resolves it, so the proxy must enforce its own egress policy
//     (the proxy itself, chosen by the user, is always allowed; a target IP
//     literal is still checked before CONNECT);
//   - the URL in http.Client's own errors: *url.Error quotes the request
//     URL with its query string (our errors and logs never do), so do not
//     put secrets in query strings, or strip them before logging errors;
//   - denial of service by anyone on the path;
//   - whoever holds a shared store's EncryptionKey: they can read its tokens.
//
// # Errors
//
// Test errors with errors.Is and errors.As: ErrHostNotAllowed,
// ErrBlockedAddress, ErrInsecureScheme,
// ErrPinMismatch (and *PinError), ErrWeakKey, ErrRevoked, ErrOCSPStaple,
// ErrNoToken (and *RefreshError), ErrIssuerMismatch, *OAuthError,
// ErrInsecureTokenFile, ErrClientCert (from LoadClientCert), ErrStaleLease
// (from a SharedTokenStore's Lease.Save), and *ConfigError from NewClient
// and NewTransport. Certificate failures from crypto/tls are
// *tls.CertificateVerificationError. Messages are lower case and start with
// "securehttp:".
package securehttp
