package ivalt

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// authAPIKey authenticates the call by its x-api-key header, a key of the
// backend scope, enforcing the organization's client certificate binding,
// and leaves the organization in c.org. A missing header is 401; a key
// that is not a backend key of any organization is 403, as iVALT answers.
func (s *Surface) authAPIKey(c *reqCtx) bool {
	key, sent, ok := c.OneHeader("x-api-key")
	switch {
	case !ok:
		return false
	case !sent:
		return c.Fail(errAPIKeyMissing, nil)
	case len(key) == 0:
		return c.Fail(errAPIKeyInvalid, nil)
	}
	ce, err := s.orgs.APIKey(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.Fail(errAPIKeyInvalid, nil)
		}
		return c.StoreFailed(err)
	}
	if ce.Scope != store.ScopeBackend {
		// An admin key is refused exactly as an unknown one.
		return c.Fail(errAPIKeyInvalid, nil)
	}
	var state *tls.ConnectionState
	if c.RC.IsTLS() {
		state = c.RC.TLSConnectionState()
	}
	if !ce.CertAllowed(state) {
		return c.Fail(httpd.ErrCertRequired, nil)
	}
	c.org = ce.Stored
	return true
}

// AuthTokenTTL is how long an auth_token from generate-auth-token is
// good for: long enough for one sign-in's calls, short enough that a
// leaked one is soon worthless.
const AuthTokenTTL = 5 * time.Minute

// maxAuthTokens bounds the tokens held at once; past it the expired ones
// are swept, and if none has expired the oldest-looking one goes, so that
// a caller minting tokens in a loop cannot grow the table.
const maxAuthTokens = 100_000

// authTokens are the auth_tokens issued: only their SHA-256 is kept, with
// the organization and the expiry, in memory. A token is a bearer of the
// organization's own API key for a few minutes, so a restart that forgets
// them costs a client one generate-auth-token call, while nothing that
// could be replayed is ever written to disk.
type authTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]authToken
}

type authToken struct {
	hash    [sha256.Size]byte
	org     store.OrgID
	expires time.Time
}

func (t *authTokens) init() { t.m = make(map[[sha256.Size]byte]authToken) }

// tokenPrefix marks countersign's iVALT auth tokens, so one pasted into the
// wrong header is recognisable.
const tokenPrefix = "ivt_"

// issue draws a token for org, valid until now+AuthTokenTTL.
func (t *authTokens) issue(org store.OrgID, now time.Time) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(tok))
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= maxAuthTokens {
		for k, v := range t.m {
			if !now.Before(v.expires) {
				delete(t.m, k)
			}
		}
		for k := range t.m {
			if len(t.m) < maxAuthTokens {
				break
			}
			delete(t.m, k)
		}
	}
	t.m[h] = authToken{hash: h, org: org, expires: now.Add(AuthTokenTTL)}
	return tok, nil
}

// valid reports whether tok is an unexpired token issued to org. The
// stored hash is compared in constant time; a token of another
// organization is refused like an unknown one.
func (t *authTokens) valid(tok string, org store.OrgID, now time.Time) bool {
	h := sha256.Sum256([]byte(tok))
	t.mu.Lock()
	e, ok := t.m[h]
	if ok && !now.Before(e.expires) {
		delete(t.m, h)
		ok = false
	}
	t.mu.Unlock()
	return ok && subtle.ConstantTimeCompare(e.hash[:], h[:]) == 1 && e.org == org
}
