package redisstore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/redisstore"
)

// Every replica of a service builds the same client: the replica whose
// token is due first refreshes, and the others take its token from Redis.
func ExampleNew() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{"redis.internal:6379"}, // one address, Sentinel or Cluster
		// Fail fast while Redis is down: each replica then refreshes on
		// its own instead of waiting.
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		DialerRetries: 1,
		MaxRetries:    1,
	})
	defer rdb.Close()

	// 32 bytes from a secret store, the same on every replica.
	key := []byte(os.Getenv("TOKEN_STORE_KEY"))
	store, err := redisstore.New(rdb, "billing-api", redisstore.Options{EncryptionKey: key})
	if err != nil {
		log.Fatal(err)
	}
	client, err := securehttp.NewClient(securehttp.Config{
		Bearer: &securehttp.Bearer{
			Store: store,
			Refresh: func(ctx context.Context) (securehttp.Token, error) {
				return fetchToken(ctx) // the call to the authorization server
			},
			Hosts: []string{"api.example.com"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = client // use it as any *http.Client
}

func fetchToken(context.Context) (securehttp.Token, error) { return securehttp.Token{}, nil }
