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

// maxAuthTokensPerOrg bounds the tokens one organization holds at once;
// past it that organization's oldest token goes. The bound is per
// organization, not shared, so that one minting tokens in a loop evicts only
// its own and never another organization's (20,000 is a token a sign-in at
// 66 sign-ins a second for the whole TTL: clients that reuse their token,
// as it allows, need a handful). About 110 bytes a token: 2.2 MB at most
// per organization.
const maxAuthTokensPerOrg = 20_000

// authTokens are the auth_tokens issued: only their SHA-256 is kept, with
// the organization and the expiry, in memory. A token is a bearer of the
// organization's own API key for a few minutes, so a restart that forgets
// them costs a client one generate-auth-token call, while nothing that
// could be replayed is ever written to disk.
//
// byOrg keeps each organization's hashes in the order they were issued,
// which, with one TTL for all, is the order they expire: issuing pops the
// front while it is expired, already forgotten, or over the bound.
type authTokens struct {
	mu    sync.Mutex
	m     map[[sha256.Size]byte]authToken
	byOrg map[store.OrgID]*tokenQueue
}

type authToken struct {
	hash    [sha256.Size]byte
	org     store.OrgID
	expires time.Time
}

// tokenQueue is one organization's token hashes, oldest first, from head.
type tokenQueue struct {
	hashes [][sha256.Size]byte
	head   int
}

func (t *authTokens) init() {
	t.m = make(map[[sha256.Size]byte]authToken)
	t.byOrg = make(map[store.OrgID]*tokenQueue)
}

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
	q := t.byOrg[org]
	if q == nil {
		q = new(tokenQueue)
		t.byOrg[org] = q
	}
	for q.head < len(q.hashes) {
		old := q.hashes[q.head]
		e, ok := t.m[old]
		if ok && now.Before(e.expires) && len(q.hashes)-q.head < maxAuthTokensPerOrg {
			break
		}
		delete(t.m, old)
		q.head++
	}
	if q.head > len(q.hashes)/2 { // reuse the front's space once it is half the slice
		q.hashes = append(q.hashes[:0], q.hashes[q.head:]...)
		q.head = 0
	}
	q.hashes = append(q.hashes, h)
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
