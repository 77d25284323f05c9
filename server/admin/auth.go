package admin

import (
	"bytes"
	"crypto/tls"
	"errors"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// authAdminKey authenticates an operator's call by its Authorization:
// Bearer header, which must carry a key of the admin scope, enforcing the
// organization's client certificate binding, and leaves the organization
// in c.org. A backend key is refused exactly as an unknown one: a key is
// never usable outside its scope, and the answer does not tell a backend
// key from a guess.
func (s *Surface) authAdminKey(c *reqCtx) bool {
	h, _, ok := c.OneHeader("Authorization")
	if !ok {
		return false
	}
	key, ok := bearer(h)
	if !ok {
		return c.Fail(httpd.ErrInvalidAPIKey, msgInvalidAdminKey)
	}
	ce, err := s.orgs.APIKey(key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.Fail(httpd.ErrInvalidAPIKey, msgInvalidAdminKey)
	case err != nil:
		return c.StoreFailed(err)
	case ce.Scope != store.ScopeAdmin:
		return c.Fail(httpd.ErrInvalidAPIKey, msgInvalidAdminKey)
	}
	if !ce.CertAllowed(c.tlsState()) {
		return c.Fail(httpd.ErrCertRequired, nil)
	}
	c.org, c.key = ce.Stored, key
	return true
}

// bearer returns the credential of an Authorization header of the Bearer
// scheme (the scheme's name compared without case, as RFC 9110 has it).
func bearer(h []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	return bytes.TrimLeft(h[len(scheme):], " "), true
}

// tlsState is the connection's TLS state, nil when it is not TLS.
func (c *reqCtx) tlsState() *tls.ConnectionState {
	if !c.RC.IsTLS() {
		return nil
	}
	return c.RC.TLSConnectionState()
}
