package store

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// DocKind names one of an organization's configuration documents: the
// approval rules (engine/rules) and the approval settings
// (engine/approval). The store keeps each opaque, as the canonical JSON
// its package renders after validating it, with a version counter, so the
// server compiles a document once per version and GET answers what PUT
// stored.
type DocKind byte

// The documents. The values are part of the key layout.
const (
	DocRules    DocKind = 1
	DocSettings DocKind = 2
)

// OrgDoc is a stored configuration document: its version (1 for the first
// PUT, one more on each later one; 0 for a document never stored, whose
// JSON is empty), when it was last written (unix ms) and its JSON.
type OrgDoc struct {
	Version   uint64
	UpdatedAt int64
	JSON      []byte
}

// ErrDocKind: a DocKind this store does not know.
var ErrDocKind = errors.New("store: unknown organization document kind")

func docArgs(kind DocKind, js []byte) error {
	if kind != DocRules && kind != DocSettings {
		return ErrDocKind
	}
	if len(js) > MaxValueBytes {
		return ErrTooLarge
	}
	return nil
}

func appendOrgDocKey(dst []byte, org OrgID, kind DocKind) []byte {
	return append(append(append(dst, kindOrgDoc), org[:]...), byte(kind))
}

// OrgDocument returns the organization's document of the kind; version 0
// and no JSON when it never stored one. ErrNotFound if there is no such
// organization.
func (db *DB) OrgDocument(org OrgID, kind DocKind) (OrgDoc, error) {
	c, err := db.begin(org, docArgs(kind, nil))
	if err != nil {
		return OrgDoc{}, err
	}
	defer c.end()
	return db.orgDocument(c, kind)
}

// DocumentVersion returns the version of the organization's document of the
// kind without copying it (0: never stored): how the server checks that
// what it compiled is still current.
func (db *DB) DocumentVersion(org OrgID, kind DocKind) (uint64, error) {
	c, err := db.begin(org, docArgs(kind, nil))
	if err != nil {
		return 0, err
	}
	defer c.end()
	var version uint64
	c.key = appendOrgDocKey(c.key[:0], c.org, kind)
	err = db.get(c.key, func(v []byte) error {
		var d OrgDoc
		if err := parseOrgDocRec(v, &d); err != nil {
			return err
		}
		version = d.Version
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return 0, db.orgExists(c)
	}
	return version, err
}

func (db *DB) orgDocument(c *call, kind DocKind) (OrgDoc, error) {
	var d OrgDoc
	c.key = appendOrgDocKey(c.key[:0], c.org, kind)
	err := db.get(c.key, func(v []byte) error {
		if err := parseOrgDocRec(v, &d); err != nil {
			return err
		}
		d.JSON = bytes.Clone(d.JSON)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return OrgDoc{}, db.orgExists(c)
	}
	return d, err
}

// PutOrgDocument replaces the organization's document of the kind with js
// (which the caller has validated and rendered canonically) and returns
// the new version, one more than the stored one. The write is synced like
// every acknowledged write, and counts as a change of the organization
// (OrgGeneration), so every compiled view of it is rebuilt.
func (db *DB) PutOrgDocument(org OrgID, kind DocKind, js []byte) (uint64, error) {
	c, err := db.begin(org, docArgs(kind, js))
	if err != nil {
		return 0, err
	}
	defer c.end()
	c.hold(db.lock(domainOrg, c.org, ""))
	old, err := db.orgDocument(c, kind)
	if err != nil {
		return 0, err
	}
	d := OrgDoc{Version: old.Version + 1, UpdatedAt: db.nowMs(), JSON: js}
	c.key = appendOrgDocKey(c.key[:0], c.org, kind)
	c.val = appendOrgDocRec(c.val[:0], &d)
	b := db.pdb.NewBatch()
	_ = b.Set(c.key, c.val, nil)
	err = db.commit(b)
	db.orgChanged() // even on error: the batch may have been applied
	if err != nil {
		return 0, err
	}
	return d.Version, nil
}

func appendOrgDocRec(dst []byte, d *OrgDoc) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, d.Version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.UpdatedAt))
	return appendLP(dst, d.JSON)
}

// parseOrgDocRec fills d from a record; d.JSON aliases v.
func parseOrgDocRec(v []byte, d *OrgDoc) error {
	p := parser{b: v}
	if p.byte1() != tagV1 {
		return ErrCorrupt
	}
	d.Version = uint64(p.i64())
	d.UpdatedAt = p.i64()
	d.JSON = p.lp()
	if !p.done() || d.Version == 0 {
		return ErrCorrupt
	}
	return nil
}
