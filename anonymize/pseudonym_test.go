package anonymize_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/internal/testenv"
)

var secret = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))

func TestPseudonymIsKeyedAndStable(t *testing.T) {
	k1, err := anonymize.ParseKey("2026-11:" + secret)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := anonymize.ParseKey("2026-12:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("j", 32))))
	p1, p2 := anonymize.NewPseudonymizer(k1), anonymize.NewPseudonymizer(k2)
	u := "us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d"
	a, b := p1.Pseudonym(u), p1.Pseudonym(u)
	if a != b || len(a) != 64 || strings.Contains(a, "810f9e88") {
		t.Errorf("pseudonym %q / %q", a, b)
	}
	if p2.Pseudonym(u) == a {
		t.Error("another key gives the same pseudonym")
	}
	if p1.Pseudonym("") != "" || p1.KeyID() != "2026-11" {
		t.Error("empty id or key id")
	}
}

func TestParseKeyRejectsWeakOrMalformedKeys(t *testing.T) {
	for _, s := range []string{"", "nokeyid", ":" + secret, "k:not base64!", "k:" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := anonymize.ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

func TestKeySources(t *testing.T) {
	ctx := context.Background()
	if _, err := (anonymize.KeySource{}).Load(ctx); err != anonymize.ErrNoKey {
		t.Errorf("no source: %v", err)
	}
	file := filepath.Join(t.TempDir(), "key")
	os.WriteFile(file, []byte("from-file:"+secret+"\n"), 0o600)
	if k, err := (anonymize.KeySource{File: file}).Load(ctx); err != nil || k.ID != "from-file" {
		t.Errorf("file: %v %v", k.ID, err)
	}
	if k, err := (anonymize.KeySource{Value: "from-env:" + secret, File: file}).Load(ctx); err != nil || k.ID != "from-env" {
		t.Errorf("env wins: %v %v", k.ID, err)
	}
}

// The key loads from Secrets Manager, over the wire against the emulator.
func TestKeyFromSecretsManager(t *testing.T) {
	c := testenv.AWS(t)
	sm := secretsmanager.NewFromConfig(c.Config)
	name := testenv.Name("qoslake-key")
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: &name, SecretString: aws.String(`{"key_id":"sm-1","key":"` + secret + `"}`),
	}); err != nil {
		t.Fatal(err)
	}
	k, err := (anonymize.KeySource{Secret: name, SM: sm}).Load(t.Context())
	if err != nil || k.ID != "sm-1" || len(k.Secret) != 32 {
		t.Fatalf("key = %+v, %v", k, err)
	}
	if _, err := (anonymize.KeySource{Secret: "missing-" + name, SM: sm}).Load(t.Context()); err == nil {
		t.Error("missing secret accepted")
	}
}
