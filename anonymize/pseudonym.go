package anonymize

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Key is a pseudonymisation key and its id. The id is stored beside every
// pseudonym, so data hashed under an old key stays recognisable after a
// rotation.
type Key struct {
	ID     string
	Secret []byte
}

// MinKeyBytes is the shortest accepted secret: HMAC-SHA-256 wants at least
// 32 bytes of key to be as strong as its output.
const MinKeyBytes = 32

// DemoKey is the fixed key of demo mode. Pseudonyms made with it protect
// nothing: it is public.
var DemoKey = Key{ID: "demo", Secret: []byte("qoslake-demo-key-not-for-production-use")}

// ParseKey reads "<key-id>:<base64 secret>".
func ParseKey(s string) (Key, error) {
	id, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || id == "" {
		return Key{}, errors.New(`key: want "<key-id>:<base64 secret>"`)
	}
	secret, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Key{}, fmt.Errorf("key %s: secret is not base64: %w", id, err)
	}
	if len(secret) < MinKeyBytes {
		return Key{}, fmt.Errorf("key %s: secret is %d bytes, want at least %d", id, len(secret), MinKeyBytes)
	}
	return Key{ID: id, Secret: secret}, nil
}

// SecretsManager is the part of the Secrets Manager API key loading calls.
type SecretsManager interface {
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// KeySource says where the key comes from; the first one set wins:
// Value (the environment), File, then Secret (a Secrets Manager secret id
// or ARN whose value is {"key_id": ..., "key": <base64>} or the
// "<key-id>:<base64>" form).
type KeySource struct {
	Value  string
	File   string
	Secret string
	SM     SecretsManager
}

// ErrNoKey means no key was configured.
var ErrNoKey = errors.New("no pseudonymisation key configured")

// Load returns the configured key.
func (s KeySource) Load(ctx context.Context) (Key, error) {
	switch {
	case s.Value != "":
		return ParseKey(s.Value)
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return Key{}, fmt.Errorf("key file: %w", err)
		}
		return ParseKey(string(b))
	case s.Secret != "":
		if s.SM == nil {
			return Key{}, errors.New("key secret: no Secrets Manager client")
		}
		out, err := s.SM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.Secret})
		if err != nil {
			return Key{}, fmt.Errorf("key secret %s: %w", s.Secret, err)
		}
		v := ""
		if out.SecretString != nil {
			v = *out.SecretString
		}
		var doc struct {
			KeyID string `json:"key_id"`
			Key   string `json:"key"`
		}
		if json.Unmarshal([]byte(v), &doc) == nil && doc.KeyID != "" {
			v = doc.KeyID + ":" + doc.Key
		}
		return ParseKey(v)
	}
	return Key{}, ErrNoKey
}

// Pseudonymizer replaces identifiers with HMAC-SHA-256 pseudonyms. It is
// safe for concurrent use.
type Pseudonymizer struct {
	key  Key
	pool sync.Pool
}

// NewPseudonymizer hashes with key.
func NewPseudonymizer(key Key) *Pseudonymizer {
	p := &Pseudonymizer{key: key}
	p.pool.New = func() any { return hmac.New(sha256.New, key.Secret) }
	return p
}

// KeyID is the id stored beside each pseudonym.
func (p *Pseudonymizer) KeyID() string { return p.key.ID }

// Pseudonym returns hex(HMAC-SHA-256(key, id)); "" stays "".
func (p *Pseudonymizer) Pseudonym(id string) string {
	if id == "" {
		return ""
	}
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	out := hex.EncodeToString(h.Sum(sum[:0]))
	p.pool.Put(h)
	return out
}
