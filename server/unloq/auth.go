package unloq

import (
	"bytes"
	"crypto/tls"
	"errors"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// msgAPIKey names both headers UNLOQ's clients send the key in.
const msgAPIKey = "Authorization: Bearer <key> (or x-api-key) is missing or not a valid API key."

// auth authenticates a backend call by its API key, sent as UNLOQ's
// clients send it: Authorization: Bearer KEY, or (clients configured with
// a secret) x-api-key: KEY with x-api-secret. The key alone is the
// credential; the secret is the one UNLOQ's clients check webhook
// signatures with, and is not compared here. The key must be of the
// backend scope, with the organization's client certificate if it binds
// one; the organization is left in c.org.
func (s *Surface) auth(c *reqCtx) bool {
	key, sent, ok := c.OneHeader("x-api-key")
	if !ok {
		return false
	}
	if !sent {
		h, _, ok := c.OneHeader("Authorization")
		if !ok {
			return false
		}
		const scheme = "bearer "
		if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
			return c.Failf(httpd.ErrInvalidAPIKey, msgAPIKey)
		}
		key = bytes.TrimLeft(h[len(scheme):], " ")
	}
	if len(key) == 0 {
		return c.Failf(httpd.ErrInvalidAPIKey, msgAPIKey)
	}
	ce, err := s.orgs.APIKey(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.Failf(httpd.ErrInvalidAPIKey, msgAPIKey)
		}
		return c.StoreFailed(err)
	}
	if ce.Scope != store.ScopeBackend {
		// Refused as an unknown key, so a key works only in its scope and
		// the answer does not say it is a key of another kind.
		return c.Failf(httpd.ErrInvalidAPIKey, msgAPIKey)
	}
	var st *tls.ConnectionState
	if c.RC.IsTLS() {
		st = c.RC.TLSConnectionState()
	}
	if !ce.CertAllowed(st) {
		return c.Fail(httpd.ErrCertRequired, nil)
	}
	c.org = ce.Stored
	return true
}
