// Package testenv gives integration tests the local AWS emulator the
// Makefile starts (moto_server), and unique resource names so tests can
// share one emulator.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/qoslake/qoslake/awsclient"
)

// AWS returns clients for the emulator at AWS_ENDPOINT_URL. Without one the
// test is skipped, except under CI=true where that is a failure: CI must
// never pass by skipping the wire tests.
func AWS(t testing.TB) *awsclient.Clients {
	t.Helper()
	if os.Getenv("AWS_ENDPOINT_URL") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts the emulator")
		}
		t.Skip("AWS_ENDPOINT_URL not set: no local AWS emulator (run `make test`)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, func(o *config.LoadOptions) error {
		if o.Region == "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
			o.Region = "us-east-1"
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			o.Credentials = aws.AnonymousCredentials{}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return awsclient.New(cfg)
}

// Name returns a fresh lower-case resource name starting with prefix.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b)
}
