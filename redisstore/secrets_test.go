package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/securehttp/securehttp/internal/secrettest"
	"github.com/securehttp/securehttp/redisstore"
)

// TestExportedTypesPrintNoSecret checks every exported struct type of the
// package: none prints its encryption key through fmt, slog or
// encoding/json.
func TestExportedTypesPrintNoSecret(t *testing.T) {
	t.Parallel()
	key := secrettest.Canary("encryption-key", 32)
	secrettest.Package{
		Dir: ".",
		Samples: map[string]func(t *testing.T) secrettest.Sample{
			"Options": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{
					Value:   redisstore.Options{EncryptionKey: []byte(key), LeaseTTL: 5e9},
					Secrets: []string{key},
				}
			},
			"Store": func(t *testing.T) secrettest.Sample {
				// A client that is never used: New does not talk to Redis.
				rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
				t.Cleanup(func() { _ = rdb.Close() })
				s, err := redisstore.New(rdb, "svc", redisstore.Options{EncryptionKey: []byte(key)})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return secrettest.Sample{Value: s, Secrets: []string{key}}
			},
		},
	}.Check(t)
}
