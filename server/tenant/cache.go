// Package tenant is the compiled per-organization view every surface
// authenticates and decides with: credentials (API keys, client ids)
// resolved to their organization without a store read per request, and each
// organization's policy compiled once, with a pool of scorers for its
// thresholds. It reads the store and knows no HTTP header: a surface finds
// the credential in its own request and asks here what it names.
package tenant

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/store"
)

// Org is an organization's compiled policy, shared read-only by every
// request and worker of the organization: compile once, evaluate many.
type Org struct {
	ID         store.OrgID
	Compiled   *policy.Compiled
	Thresholds biometric.Thresholds
	Dim        int // the embedding dimension its scorers score

	policyJSON []byte    // the policy the entry was compiled from
	scorers    sync.Pool // *biometric.Scorer for the request path (rescoring, enrollment)
	// gen is the store's org generation at which the entry was last known
	// to match the stored organization (ByID's check).
	gen atomic.Uint64
}

// Scorer takes a scorer of the organization's thresholds from its pool;
// give it back with PutScorer.
func (e *Org) Scorer() *biometric.Scorer {
	if sc, _ := e.scorers.Get().(*biometric.Scorer); sc != nil {
		return sc
	}
	return biometric.NewScorer(e.Thresholds, e.Dim)
}

// PutScorer returns a scorer taken with Scorer.
func (e *Org) PutScorer(sc *biometric.Scorer) { e.scorers.Put(sc) }

// Credential is what a credential (an API key or a client id) resolved to:
// the organization as the store had it, for an API key its scope (a
// surface serves only the keys of its own scope) and its compiled policy
// (nil with PolicyErr when the stored policy does not compile; such a
// credential is not cached). It is shared: no request writes to it.
type Credential struct {
	Stored    store.Org
	Scope     store.Scope
	Org       *Org
	PolicyErr error

	keyHash [32]byte // SHA-256 of the API key; zero for a client id
}

// Cache resolves credentials to organizations and compiled policies
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
type Cache struct {
	db  *store.DB
	dim int

	mu    sync.RWMutex
	gen   uint64                   // the generation byKey and byCID were filled under
	byKey map[[32]byte]*Credential // SHA-256 of an API key
	byCID map[string]*Credential
	byOrg map[store.OrgID]*Org // kept across generations
	// approvals: each organization's compiled rules and settings, kept
	// across generations and checked against the store's versions.
	approvals map[store.OrgID]*Approvals
}

// ErrPolicy: an organization's stored policy does not compile.
var ErrPolicy = errors.New("tenant: organization policy does not compile")

// NewCache returns an empty cache over db, for scorers of embeddings of
// dimension dim.
func NewCache(db *store.DB, dim int) *Cache {
	return &Cache{
		db:    db,
		dim:   dim,
		gen:   db.OrgGeneration(),
		byKey: make(map[[32]byte]*Credential),
		byCID: make(map[string]*Credential),
		byOrg: make(map[store.OrgID]*Org),

		approvals: make(map[store.OrgID]*Approvals),
	}
}

// Len is the number of API keys and client ids cached.
func (oc *Cache) Len() (apiKeys, clientIDs int) {
	oc.mu.RLock()
	defer oc.mu.RUnlock()
	return len(oc.byKey), len(oc.byCID)
}

// APIKey resolves an API key, of any scope: the caller checks
// Credential.Scope. ErrNotFound means no such key.
func (oc *Cache) APIKey(key []byte) (*Credential, error) {
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
	org, scope, err := oc.db.APIKey(key)
	if err != nil {
		return nil, err
	}
	ce = &Credential{keyHash: hash, Stored: org, Scope: scope}
	ce.Org, ce.PolicyErr = oc.entry(&ce.Stored, gen)
	if oc.lockToInsert(gen) {
		if ce.PolicyErr == nil {
			oc.byKey[hash] = ce
		}
		oc.mu.Unlock()
	}
	return ce, nil
}

// ClientID resolves a publishable client id. The SDK's calls need no
// policy, so none is compiled.
func (oc *Cache) ClientID(cid []byte) (*Credential, error) {
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
	ce = &Credential{Stored: org}
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
func (oc *Cache) lockToInsert(gen uint64) bool {
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
func (oc *Cache) entry(org *store.Org, gen uint64) (*Org, error) {
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
			return nil, fmt.Errorf("%w: org %s: %v", ErrPolicy, org.ID, err)
		}
	}
	compiled, err := policy.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: org %s: %v", ErrPolicy, org.ID, err)
	}
	e = &Org{
		ID:         org.ID,
		policyJSON: bytes.Clone(org.Policy),
		Compiled:   compiled,
		Thresholds: compiled.Thresholds(),
		Dim:        oc.dim,
	}
	e.gen.Store(gen)
	oc.mu.Lock()
	oc.byOrg[e.ID] = e
	oc.mu.Unlock()
	return e, nil
}

// ByID returns the compiled policy of the organization with id (frame
// workers), reading the organization from the store when it is not cached
// or may have changed since.
func (oc *Cache) ByID(id store.OrgID) (*Org, error) {
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

// CertAllowed reports whether a request over a connection in TLS state st
// (nil when not TLS) may use the credential: always, unless the organization
// bound client certificates, when the connection's client certificate must
// be one of them (by the SHA-256 of its SubjectPublicKeyInfo).
func (ce *Credential) CertAllowed(st *tls.ConnectionState) bool {
	return CertBound(st, ce.Stored.CertFingerprints)
}

// CertBound reports whether a connection in TLS state st may carry an API
// key of an organization that bound the certificates fps (by SPKI
// SHA-256): always when it bound none. The admin surface asks it of a new
// set before storing it, so an operator cannot lock out the connection
// making the change.
func CertBound(st *tls.ConnectionState, fps [][32]byte) bool {
	if len(fps) == 0 {
		return true
	}
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
