package securehttptest_test

import (
	"fmt"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testutil"
	"github.com/securehttp/securehttp/securehttptest"
)

// A test of a client that calls an API with a token from an authorization
// server: the client verifies the API's certificate against the kit's CA
// and its pins, obtains the token with the client credentials grant, and
// sends it to the API, whose server records what it received.
func Example() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	api := securehttptest.NewServer(t, nil) // answers 200, records every request
	auth := securehttptest.NewAuthServer(t)
	cfg := api.Config() // trusts and pins every server of the kit
	cfg.Bearer = &securehttp.Bearer{ClientCredentials: auth.ClientCredentials(), Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := auth.VerifyRequest(api.Requests()[0]); err != nil {
		t.Errorf("the API got no valid token: %v", err)
	}

	claims, _ := auth.VerifyRequest(api.Requests()[0])
	fmt.Println(resp.StatusCode, api.Requests()[0].URL.Path, claims.Subject)
	// Output: 200 /v1/invoices test-client
}
