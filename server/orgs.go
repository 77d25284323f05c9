package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/store"
)

// orgEntry is an organization's compiled policy, shared read-only by every
// request and worker of the organization: compile once, evaluate many.
type orgEntry struct {
	id         string
	policyJSON []byte // the policy the entry was compiled from
	compiled   *policy.Compiled
	thresholds biometric.Thresholds
	dim        int
	scorers    sync.Pool // *biometric.Scorer for the request path (rescoring, enrollment)
	// gen is the store's org generation at which the entry was last known
	// to match the stored organization (byID's check).
	gen atomic.Uint64
}

func (e *orgEntry) getScorer() *biometric.Scorer {
	if sc, _ := e.scorers.Get().(*biometric.Scorer); sc != nil {
		return sc
	}
	return biometric.NewScorer(e.thresholds, e.dim)
}

func (e *orgEntry) putScorer(sc *biometric.Scorer) { e.scorers.Put(sc) }

// credEntry is what a credential (an API key or a client id) resolved to:
// the organization as the store had it, and, for an API key, its compiled
// policy (nil with policyErr when the stored policy does not compile; such
// an entry is not cached).
type credEntry struct {
	keyHash   [32]byte // SHA-256 of the API key; zero for a client id
	org       store.Org
	e         *orgEntry
	policyErr error
}

// orgCache resolves credentials to organizations and compiled policies
// without reading the store on every request: an API key (by its SHA-256,
// as the store indexes it) or a client id maps to the organization it
// named when it was first used.
//
// An organization changes only through the store, which counts every change
// (store.DB.OrgGeneration). The cached credentials are tagged with the
// generation they were read under; after a change every lookup finds the
// tag stale and resolves its credential afresh from the store (the first
// to be cached again forgets all the others), so a bound certificate or a
// new policy is in force from the next request on. A compiled policy is
// reused when its bytes did not change.
//
// Only credentials that resolved are cached: an unknown key costs a store
// lookup each time, as before, and cannot grow the cache.
type orgCache struct {
	db  *store.DB
	dim int

	mu    sync.RWMutex
	gen   uint64                  // the generation byKey and byCID were filled under
	byKey map[[32]byte]*credEntry // SHA-256 of an API key
	byCID map[string]*credEntry
	byOrg map[string]*orgEntry // organization id; kept across generations
}

var errPolicy = errors.New("server: organization policy does not compile")

func (oc *orgCache) init(db *store.DB, dim int) {
	oc.db = db
	oc.dim = dim
	oc.gen = db.OrgGeneration()
	oc.byKey = make(map[[32]byte]*credEntry)
	oc.byCID = make(map[string]*credEntry)
	oc.byOrg = make(map[string]*orgEntry)
}

// apiKey resolves an API key. ErrNotFound means no such key.
func (oc *orgCache) apiKey(key []byte) (*credEntry, error) {
	// The format is public, so refusing a malformed key before hashing it
	// leaks nothing (the store does the same).
	if len(key) != store.APIKeyLen || !bytes.HasPrefix(key, []byte(store.APIKeyPrefix)) {
		return nil, store.ErrNotFound
	}
	hash := sha256.Sum256(key)
	gen := oc.db.OrgGeneration() // before the store lookup: see OrgGeneration
	oc.mu.RLock()
	ce := oc.byKey[hash]
	if oc.gen != gen {
		ce = nil
	}
	oc.mu.RUnlock()
	// The map found the entry by the hash; comparing the stored hash again,
	// in constant time, keeps the check explicit, as the store's own lookup
	// does, and independent of how the map compares keys.
	if ce != nil && subtle.ConstantTimeCompare(ce.keyHash[:], hash[:]) == 1 {
		return ce, nil
	}
	org, err := oc.db.OrgByAPIKey(key)
	if err != nil {
		return nil, err
	}
	ce = &credEntry{keyHash: hash, org: org}
	ce.e, ce.policyErr = oc.entry(&ce.org, gen)
	if oc.lockToInsert(gen) {
		if ce.policyErr == nil {
			oc.byKey[hash] = ce
		}
		oc.mu.Unlock()
	}
	return ce, nil
}

// clientID resolves a publishable client id. The SDK's calls need no
// policy, so none is compiled.
func (oc *orgCache) clientID(cid []byte) (*credEntry, error) {
	gen := oc.db.OrgGeneration()
	oc.mu.RLock()
	ce := oc.byCID[string(cid)] // no copy: a map index by a converted []byte
	if oc.gen != gen {
		ce = nil
	}
	oc.mu.RUnlock()
	if ce != nil {
		return ce, nil
	}
	org, err := oc.db.OrgByCID(cid)
	if err != nil {
		return nil, err
	}
	ce = &credEntry{org: org}
	if oc.lockToInsert(gen) {
		oc.byCID[string(cid)] = ce
		oc.mu.Unlock()
	}
	return ce, nil
}

// lockToInsert takes the write lock and reports whether an entry read under
// gen may be cached: if so the lock stays held for the caller to insert and
// unlock. A newer gen than the cache's empties the cache first; an older
// one means the entry may already be stale, so it is used once, not kept.
func (oc *orgCache) lockToInsert(gen uint64) bool {
	oc.mu.Lock()
	switch {
	case gen > oc.gen:
		oc.gen = gen
		clear(oc.byKey)
		clear(oc.byCID)
	case gen < oc.gen:
		oc.mu.Unlock()
		return false
	}
	return true
}

// entry returns the compiled policy of org, as read from the store under
// generation gen, compiling it unless the cached one was compiled from the
// same policy bytes.
func (oc *orgCache) entry(org *store.Org, gen uint64) (*orgEntry, error) {
	oc.mu.RLock()
	e := oc.byOrg[org.ID]
	oc.mu.RUnlock()
	if e != nil && bytes.Equal(e.policyJSON, org.Policy) {
		if e.gen.Load() < gen {
			e.gen.Store(gen)
		}
		return e, nil
	}
	p := policy.Default()
	if len(org.Policy) > 0 {
		var err error
		if p, err = policy.Parse(org.Policy); err != nil {
			return nil, fmt.Errorf("%w: org %s: %v", errPolicy, org.ID, err)
		}
	}
	compiled, err := policy.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: org %s: %v", errPolicy, org.ID, err)
	}
	e = &orgEntry{
		id:         strings.Clone(org.ID),
		policyJSON: bytes.Clone(org.Policy),
		compiled:   compiled,
		thresholds: compiled.Thresholds(),
		dim:        oc.dim,
	}
	e.gen.Store(gen)
	oc.mu.Lock()
	oc.byOrg[e.id] = e
	oc.mu.Unlock()
	return e, nil
}

// byID returns the compiled policy of the organization with id (frame
// workers), reading the organization from the store when it is not cached
// or may have changed since.
func (oc *orgCache) byID(id string) (*orgEntry, error) {
	gen := oc.db.OrgGeneration()
	oc.mu.RLock()
	e := oc.byOrg[id]
	oc.mu.RUnlock()
	if e != nil && e.gen.Load() == gen {
		return e, nil
	}
	org, err := oc.db.OrgByID(id)
	if err != nil {
		return nil, err
	}
	return oc.entry(&org, gen)
}

// authAPIKey authenticates a backend call by its apikey header, enforcing the
// organization's client certificate binding, and leaves the organization in
// c.org.
func (s *Server) authAPIKey(c *reqCtx) (*orgEntry, bool) {
	key, _, ok := c.oneHeader("apikey")
	if !ok {
		return nil, false
	}
	if len(key) == 0 {
		return nil, c.fail(errInvalidAPIKey, nil)
	}
	ce, err := s.orgs.apiKey(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, c.fail(errInvalidAPIKey, nil)
		}
		return nil, c.storeFailed(err)
	}
	if len(ce.org.CertFingerprints) > 0 && !certBound(c.ctx, ce.org.CertFingerprints) {
		return nil, c.fail(errCertRequired, nil)
	}
	if ce.policyErr != nil {
		s.log.Error("organization policy", "org", ce.org.ID, "err", ce.policyErr)
		return nil, c.fail(errInternal, nil)
	}
	// A copy of the cached Org: its strings and slices are shared, and no
	// request writes to them.
	c.org = ce.org
	return ce.e, true
}

// authClientID resolves the publishable client id of an SDK call into c.org.
func (s *Server) authClientID(c *reqCtx) bool {
	cid, _, ok := c.oneHeader("x-client-id")
	if !ok {
		return false
	}
	if len(cid) == 0 {
		return c.fail(errInvalidClientID, nil)
	}
	ce, err := s.orgs.clientID(cid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.fail(errInvalidClientID, nil)
		}
		return c.storeFailed(err)
	}
	c.org = ce.org
	return true
}

// certBound reports whether the connection is TLS with a client certificate
// whose SubjectPublicKeyInfo SHA-256 is one of fps.
func certBound(ctx *fasthttp.RequestCtx, fps [][32]byte) bool {
	if !ctx.IsTLS() {
		return false
	}
	st := ctx.TLSConnectionState()
	if st == nil || len(st.PeerCertificates) == 0 {
		return false
	}
	sum := sha256.Sum256(st.PeerCertificates[0].RawSubjectPublicKeyInfo)
	found := 0
	for i := range fps {
		found |= subtle.ConstantTimeCompare(sum[:], fps[i][:])
	}
	return found == 1
}
