package native

import (
	"crypto/tls"
	"errors"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// authAPIKey authenticates a backend call by its apikey header (a key of
// the backend scope), enforcing the organization's client certificate binding, and leaves the organization in
// c.org.
func (s *Surface) authAPIKey(c *reqCtx) (*tenant.Org, bool) {
	key, _, ok := c.OneHeader("apikey")
	if !ok {
		return nil, false
	}
	if len(key) == 0 {
		return nil, c.Fail(httpd.ErrInvalidAPIKey, nil)
	}
	ce, err := s.orgs.APIKey(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, c.Fail(httpd.ErrInvalidAPIKey, nil)
		}
		return nil, c.StoreFailed(err)
	}
	if ce.Scope != store.ScopeBackend {
		// An admin key is not a backend key: refused exactly as an unknown
		// one, so a key is never usable outside its scope and the answer
		// does not say that it is a key of another kind.
		return nil, c.Fail(httpd.ErrInvalidAPIKey, nil)
	}
	if !ce.CertAllowed(c.tlsState()) {
		return nil, c.Fail(httpd.ErrCertRequired, nil)
	}
	if ce.PolicyErr != nil {
		s.log.Error("organization policy", "org", ce.Stored.ID.String(), "err", ce.PolicyErr)
		return nil, c.Fail(httpd.ErrInternal, nil)
	}
	// A copy of the cached Org: its strings and slices are shared, and no
	// request writes to them.
	c.org = ce.Stored
	return ce.Org, true
}

// authClientID resolves the publishable client id of an SDK call into c.org.
func (s *Surface) authClientID(c *reqCtx) bool {
	cid, _, ok := c.OneHeader("x-client-id")
	if !ok {
		return false
	}
	if len(cid) == 0 {
		return c.Fail(errInvalidClientID, nil)
	}
	ce, err := s.orgs.ClientID(cid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.Fail(errInvalidClientID, nil)
		}
		return c.StoreFailed(err)
	}
	c.org = ce.Stored
	return true
}

// tlsState is the connection's TLS state, nil when it is not TLS.
func (c *reqCtx) tlsState() *tls.ConnectionState {
	if !c.RC.IsTLS() {
		return nil
	}
	return c.RC.TLSConnectionState()
}
