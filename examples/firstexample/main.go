// Command firstexample is the first example of README.md: a client for one
// API that verifies chains against the system roots, pins the API's host to
// two keys (the one in use and a backup), and gets its tokens from an OAuth
// 2.0 authorization server with the client credentials grant. It compiles as
// it is; to run it, put your own hosts, pins and client in it.
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/securehttp/securehttp"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(securehttp.Redacted(err)) // the error without the URL's query
	}
}

// run holds README's example, from NewClient to the first request.
func run() error {
	client, err := securehttp.NewClient(securehttp.Config{
		// RootCAs is nil: chains are verified against the system roots.
		Pins: []securehttp.PinSet{{
			Host: "api.example.com",
			Pins: []string{
				"sha256/r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E=", // the key in use
				"sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=", // the backup key
			},
		}},
		Bearer: &securehttp.Bearer{
			Hosts: []string{"api.example.com"}, // the only host that gets the token
			ClientCredentials: &securehttp.ClientCredentials{
				Issuer:       "https://auth.example.com", // the token endpoint is discovered
				ClientID:     "billing-service",
				ClientSecret: os.Getenv("CLIENT_SECRET"),
			},
		},
	})
	if err != nil {
		return err // a *securehttp.ConfigError names the bad entry
	}
	resp, err := client.Get("https://api.example.com/v1/invoices")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	return nil
}
