package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"

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
}

func (e *orgEntry) getScorer() *biometric.Scorer {
	if sc, _ := e.scorers.Get().(*biometric.Scorer); sc != nil {
		return sc
	}
	return biometric.NewScorer(e.thresholds, e.dim)
}

func (e *orgEntry) putScorer(sc *biometric.Scorer) { e.scorers.Put(sc) }

// orgCache maps organization ids to their compiled policies. An entry is
// recompiled when the organization's stored policy bytes change, so the
// cache never serves a stale policy for an org record the request just read.
type orgCache struct {
	db  *store.DB
	dim int
	mu  sync.RWMutex
	m   map[string]*orgEntry
}

var errPolicy = errors.New("server: organization policy does not compile")

func (oc *orgCache) init(db *store.DB, dim int) {
	oc.db = db
	oc.dim = dim
	oc.m = make(map[string]*orgEntry)
}

// entry returns the compiled policy of org (as just read from the store).
func (oc *orgCache) entry(org *store.Org) (*orgEntry, error) {
	oc.mu.RLock()
	e := oc.m[org.ID]
	oc.mu.RUnlock()
	if e != nil && bytes.Equal(e.policyJSON, org.Policy) {
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
	oc.mu.Lock()
	oc.m[e.id] = e
	oc.mu.Unlock()
	return e, nil
}

// byID returns the compiled policy of the organization with id, reading the
// organization from the store when it is not cached (frame workers).
func (oc *orgCache) byID(id string) (*orgEntry, error) {
	oc.mu.RLock()
	e := oc.m[id]
	oc.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	org, err := oc.db.OrgByID(id)
	if err != nil {
		return nil, err
	}
	return oc.entry(&org)
}

// authAPIKey authenticates a backend call by its apikey header, enforcing the
// organization's client certificate binding, and leaves the organization in
// c.org.
func (s *Server) authAPIKey(c *reqCtx) (*orgEntry, bool) {
	key := c.ctx.Request.Header.Peek("apikey")
	if len(key) == 0 {
		return nil, c.fail(errInvalidAPIKey, nil)
	}
	org, err := s.db.OrgByAPIKey(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, c.fail(errInvalidAPIKey, nil)
		}
		return nil, c.storeFailed(err)
	}
	if len(org.CertFingerprints) > 0 && !certBound(c.ctx, org.CertFingerprints) {
		return nil, c.fail(errCertRequired, nil)
	}
	c.org = org
	e, err := s.orgs.entry(&c.org)
	if err != nil {
		s.log.Error("organization policy", "org", org.ID, "err", err)
		return nil, c.fail(errInternal, nil)
	}
	return e, true
}

// authClientID resolves the publishable client id of an SDK call into c.org.
func (s *Server) authClientID(c *reqCtx) bool {
	cid := c.ctx.Request.Header.Peek("x-client-id")
	if len(cid) == 0 {
		return c.fail(errInvalidClientID, nil)
	}
	org, err := s.db.OrgByCID(cid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.fail(errInvalidClientID, nil)
		}
		return c.storeFailed(err)
	}
	c.org = org
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
