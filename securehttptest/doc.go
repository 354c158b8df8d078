// Package securehttptest is the test kit of securehttp: HTTPS servers and
// an OAuth 2.0 authorization server that a securehttp client trusts, so that
// your tests go through the checks your code relies on (chain verification,
// pins, OCSP staples, tokens to their hosts only, DPoP, client
// certificates) instead of mocking them away. Nothing in it turns a check
// off: a client trusts the kit's CA through Config.RootCAs, as it would
// trust a private CA in production.
//
// A test starts a [Server] with NewServer and an [AuthServer] with
// NewAuthServer, makes a client from the server's Config with the
// authorization server's ClientCredentials, and asserts on what the server
// received (Requests) and on the token it carried (VerifyRequest):
//
//	api := securehttptest.NewServer(t, nil)
//	auth := securehttptest.NewAuthServer(t)
//	cfg := api.Config()
//	cfg.Bearer = &securehttp.Bearer{ClientCredentials: auth.ClientCredentials(), Hosts: []string{api.Host}}
//	client, err := securehttp.NewClient(cfg)
//	...
//	claims, err := auth.VerifyRequest(api.Requests()[0])
//
// Servers made without WithCA share one [CA], so that a client made from
// any server's Config trusts, pins and reaches every other. Options make a
// server fail as production servers do (an expired or mis-issued
// certificate, a revoked staple, a token endpoint that is down or slow),
// and each says which error the client then returns.
//
// Servers listen on 127.0.0.1 and stop when the test ends. The kit's
// functions take the test's testing.TB, and fail the test when they
// cannot do what they are asked.
package securehttptest
