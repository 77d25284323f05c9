package tenant

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/store"
)

// Approvals is an organization's compiled approval configuration: its rule
// set (nil when it never stored one: rules.Evaluate then decides only the
// biometric factor) and its settings document, each with the store version
// it was compiled from. Shared read-only by every request of the
// organization; a PUT makes a new one.
type Approvals struct {
	Rules           *rules.Compiled
	Settings        approval.Settings
	Document        approval.SettingsDocument
	RulesVersion    uint64
	SettingsVersion uint64

	// gen is the store's org generation at which the entry was last known
	// to match the stored documents.
	gen atomic.Uint64
}

// ErrConfig: an organization's stored rules or settings do not compile
// (written by another build, or damaged); its approvals are refused rather
// than decided under defaults.
var ErrConfig = errors.New("tenant: organization approval configuration does not compile")

// Approvals returns the organization's compiled rules and settings. On the
// request path it reads no store and allocates nothing: the entry is
// checked against the store's org generation, which every PUT of a
// document bumps; after a change (of any organization) it reads the two
// document versions, and compiles again only a document whose version
// moved.
func (oc *Cache) Approvals(org store.OrgID) (*Approvals, error) {
	gen := oc.db.OrgGeneration() // before the store reads: see OrgGeneration
	oc.mu.RLock()
	a := oc.approvals[org]
	oc.mu.RUnlock()
	if a != nil && a.gen.Load() == gen {
		return a, nil
	}
	rv, err := oc.db.DocumentVersion(org, store.DocRules)
	if err != nil {
		return nil, err
	}
	sv, err := oc.db.DocumentVersion(org, store.DocSettings)
	if err != nil {
		return nil, err
	}
	if a != nil && a.RulesVersion == rv && a.SettingsVersion == sv {
		if a.gen.Load() < gen {
			a.gen.Store(gen)
		}
		return a, nil
	}
	a, err = oc.compileApprovals(org)
	if err != nil {
		return nil, err
	}
	a.gen.Store(gen)
	oc.mu.Lock()
	if old := oc.approvals[org]; old == nil || old.RulesVersion <= a.RulesVersion && old.SettingsVersion <= a.SettingsVersion {
		oc.approvals[org] = a
	}
	oc.mu.Unlock()
	return a, nil
}

// compileApprovals reads and compiles the organization's two documents.
func (oc *Cache) compileApprovals(org store.OrgID) (*Approvals, error) {
	rd, err := oc.db.OrgDocument(org, store.DocRules)
	if err != nil {
		return nil, err
	}
	sd, err := oc.db.OrgDocument(org, store.DocSettings)
	if err != nil {
		return nil, err
	}
	a := &Approvals{RulesVersion: rd.Version, SettingsVersion: sd.Version, Document: approval.DefaultSettingsDocument()}
	if rd.Version > 0 {
		r, err := rules.Parse(rd.JSON)
		if err == nil {
			a.Rules, err = rules.Compile(r, rd.Version)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: org %s rules version %d: %v", ErrConfig, org, rd.Version, err)
		}
	}
	if sd.Version > 0 {
		if a.Document, err = approval.ParseSettingsDocument(sd.JSON); err != nil {
			return nil, fmt.Errorf("%w: org %s settings version %d: %v", ErrConfig, org, sd.Version, err)
		}
	}
	a.Settings = a.Document.Approvals
	return a, nil
}
