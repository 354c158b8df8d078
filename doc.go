// Package securehttp is a hardened HTTPS client for API calls that carry
// bearer tokens. [NewClient] returns an ordinary *http.Client, so code
// written for net/http keeps working: HTTP/2, proxies from the environment,
// context cancellation, CheckRedirect, cookie jars and CloseIdleConnections.
// Set its Timeout as on any client; its Transport is the hardened
// http.RoundTripper.
//
// On the first request and on every redirect hop, the client:
//
//   - refuses any scheme but https before a connection is made;
//   - verifies every chain with crypto/x509 against [Config].RootCAs or the
//     system roots, with TLS 1.2 or later and no weak key: nothing turns
//     this off;
//   - checks [Config].Pins against the verified chain, never against what
//     the server merely sent, and verifies stapled OCSP responses;
//   - sends the token of [Config].Bearer to the hosts it names and to no
//     other, refreshes it ahead of expiry with one call however many
//     requests wait, and recovers once from a 401; with [Bearer].DPoP, binds
//     the token to a key (RFC 9449);
//   - retries idempotent requests after transient failures, within a retry
//     budget per host ([RetryPolicy]);
//   - with [Config].AllowHosts and [Config].BlockPrivateNetworks, contacts
//     only the hosts and addresses allowed, judged on the address dialled.
//
// The zero Config is usable, and every capability is a field with a
// documented zero value. Tokens come from [ClientCredentials] (OAuth 2.0,
// with discovery) or a function of yours, and are kept in a [TokenStore];
// a [SharedTokenStore] lets many processes refresh once between them.
// [LoadClientCert] provides a client certificate that follows its files as
// they rotate, and [Hooks] receive events for metrics and traces, with no
// secret in them.
//
// # Example
//
//	client, err := securehttp.NewClient(securehttp.Config{
//		Pins: []securehttp.PinSet{{
//			Host: "api.example.com",
//			Pins: []string{
//				"sha256/r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E=", // the key in use
//				"sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=", // the backup key
//			},
//		}},
//		Bearer: &securehttp.Bearer{
//			Hosts: []string{"api.example.com"}, // the only host that gets the token
//			ClientCredentials: &securehttp.ClientCredentials{
//				Issuer:       "https://auth.example.com",
//				ClientID:     "billing-service",
//				ClientSecret: os.Getenv("CLIENT_SECRET"),
//			},
//		},
//	})
//	if err != nil {
//		return err // a *securehttp.ConfigError names the bad entry
//	}
//	resp, err := client.Get("https://api.example.com/v1/invoices")
//
// # Threat model
//
// securehttp defends requests, and the credentials it handles, against
// anyone on the network path, a mis-issued certificate for a pinned host,
// redirects that would carry the token to another host, secrets in logs,
// errors and telemetry, and retries that amplify an outage; and, when you
// turn them on, against stolen tokens (DPoP, certificate-bound tokens) and
// server-side request forgery. It does not defend against a compromised
// client machine or token store, a compromised server, a mis-issued
// certificate for a host that is not pinned, revocation that is not
// stapled, a server that leaks or replays the token (unless DPoP binds it),
// traffic analysis, or denial of service. The repository's
// docs/threat-model.md has the full model, and docs/ a guide per
// capability.
//
// # Errors
//
// Test errors with errors.Is and errors.As, never by their text. NewClient
// returns a *[ConfigError]. A request fails with [ErrInsecureScheme],
// [ErrHostNotAllowed], [ErrBlockedAddress], [ErrPinMismatch] (a *[PinError]),
// [ErrWeakKey], [ErrRevoked], [ErrOCSPStaple] or [ErrNoToken] (a
// *[RefreshError], whose cause may be an *[OAuthError] or
// [ErrIssuerMismatch]); a chain that does not verify is a
// *tls.CertificateVerificationError. [FileStore] returns
// [ErrInsecureTokenFile], a SharedTokenStore [ErrStaleLease], and
// LoadClientCert [ErrClientCert]. Messages start with "securehttp:".
package securehttp
