package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/countersign/countersign/store"
)

// Errors of the package.
var (
	// ErrURL: a subscription URL that is not an absolute http or https URL
	// with a host, or that carries credentials.
	ErrURL = errors.New("webhook: url must be an absolute http:// or https:// URL with a host and no user:password")
	// ErrSecret: a stored secret that is not one NewSecret made.
	ErrSecret = errors.New("webhook: secret is not a whsec_ secret")
)

// standardSecretPrefix starts a Standard Webhooks secret, whose rest is
// the base64 of the signing key.
const (
	standardSecretPrefix = "whsec_"
	secretBytes          = 32
)

// CheckURL refuses what deliveries cannot be posted to: anything but an
// absolute http(s) URL with a host. Credentials in the URL are refused too:
// they would sit in the delivery log and every listing.
func CheckURL(s string) error {
	if len(s) > store.MaxWebhookURLBytes {
		return ErrURL
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return ErrURL
	}
	return nil
}

// NewSecret returns a fresh signing secret for a subscription of format
// f, as the admin API shows it once. Standard Webhooks' is whsec_ and the
// base64 of 32 random bytes (the specification's form); UNLOQ's is the
// base64url of 32 random bytes, used as the HMAC key as written, as
// UNLOQ's clients use theirs.
func NewSecret(f store.WebhookFormat) string {
	var raw [secretBytes]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	if f == store.FormatUnloq {
		return base64.RawURLEncoding.EncodeToString(raw[:])
	}
	return standardSecretPrefix + base64.StdEncoding.EncodeToString(raw[:])
}

// signingKey is the HMAC key of a secret: the decoded bytes after whsec_
// for the standard format, the secret itself for UNLOQ's.
func signingKey(f store.WebhookFormat, secret []byte) ([]byte, error) {
	if f == store.FormatUnloq {
		return secret, nil
	}
	rest, ok := strings.CutPrefix(string(secret), standardSecretPrefix)
	if !ok {
		return nil, ErrSecret
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) == 0 {
		return nil, ErrSecret
	}
	return key, nil
}

// SignStandard is the webhook-signature header of a delivery per Standard
// Webhooks: "v1," and the base64 of HMAC-SHA256(key, id.timestamp.body),
// timestamp in Unix seconds as sent in webhook-timestamp.
func SignStandard(key []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignUnloq is the X-Unloq-Signature header of a form-encoded delivery to
// target: the base64 of HMAC-SHA256(key, path and query of target, then
// each field's key and value in sorted key order).
func SignUnloq(key []byte, target *url.URL, form url.Values) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(target.EscapedPath()))
	if target.RawQuery != "" {
		m.Write([]byte{'?'})
		m.Write([]byte(target.RawQuery))
	}
	for _, k := range sortedKeys(form) {
		m.Write([]byte(k))
		m.Write([]byte(form.Get(k)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
