package store

import (
	"bytes"
	"encoding/binary"
)

// Org is an organization: a tenant. Every other record belongs to one.
type Org struct {
	ID               OrgID
	Name             string     // the operator's name for it
	CID              string     // publishable client id, "cid_" + 24 base32 chars
	Policy           []byte     // policy JSON (engine/policy.Parse); empty: defaults
	CertFingerprints [][32]byte // SPKI SHA-256 of bound client certificates
	CreatedAt        int64      // unix ms
}

// CreateOrg creates an organization with a fresh id, client id and first API
// key. The key is returned once and only its SHA-256 is stored.
func (db *DB) CreateOrg(name string, policyJSON []byte) (Org, string, error) {
	c, err := db.admit(orgArgs(name, policyJSON))
	if err != nil {
		return Org{}, "", err
	}
	defer c.end()

	var org OrgID
	var cidRaw [cidRandomBytes]byte
	for org.IsZero() { // the zero id names no organization
		if err := db.random(org[:]); err != nil {
			return Org{}, "", err
		}
	}
	if err := db.random(cidRaw[:]); err != nil {
		return Org{}, "", err
	}
	cid := CIDPrefix + cidEncoding.EncodeToString(cidRaw[:])
	key, hash, err := db.newSecret(APIKeyPrefix)
	if err != nil {
		return Org{}, "", err
	}
	now := db.nowMs()

	c.hold(db.lock(domainOrg, org, ""))
	// Ids are random and wide enough never to collide; checking costs two
	// reads on a rare path and turns "never" into "cannot".
	c.key = appendOrgKey(c.key[:0], org)
	c.key2 = appendCIDKey(c.key2[:0], cid)
	for _, k := range [][]byte{c.key, c.key2} {
		if ok, err := db.has(k); err != nil || ok {
			if err == nil {
				err = ErrExists
			}
			return Org{}, "", err
		}
	}

	b := db.pdb.NewBatch()
	c.val = appendOrgRec(c.val[:0], &orgRec{createdAt: now, name: []byte(name), cid: []byte(cid), policy: policyJSON})
	_ = b.Set(c.key, c.val, nil)
	_ = b.Set(c.key2, org[:], nil)
	c.key = appendAPIKeyKey(c.key[:0], &hash)
	c.val = appendAPIKeyRec(c.val[:0], org, &hash, now)
	_ = b.Set(c.key, c.val, nil)
	setKeyListing(b, &c.scratch, org, key, &hash, &APIKeyInfo{Name: "initial", Scope: ScopeBackend, CreatedAt: now})
	err = db.commit(b)
	db.orgChanged() // even on error: the batch may have been applied
	if err != nil {
		return Org{}, "", err
	}
	return Org{
		ID:        org,
		Name:      name,
		CID:       cid,
		Policy:    bytes.Clone(policyJSON),
		CreatedAt: now,
	}, key, nil
}

// orgArgs is CreateOrg's argErr.
func orgArgs(name string, policyJSON []byte) error {
	if len(name) > MaxKeyBytes || len(policyJSON) > MaxValueBytes {
		return ErrTooLarge
	}
	return nil
}

// OrgByID returns the organization with id. ErrNotFound if there is none.
func (db *DB) OrgByID(id OrgID) (Org, error) {
	c, err := db.begin(id, nil)
	if err != nil {
		return Org{}, err
	}
	defer c.end()
	return db.orgByID(&c.scratch, c.org)
}

func (db *DB) orgByID(s *scratch, org OrgID) (Org, error) {
	var o Org
	s.key = appendOrgKey(s.key[:0], org)
	err := db.get(s.key, func(v []byte) error {
		return decodeOrg(org, v, &o)
	})
	return o, err
}

// decodeOrg fills o from an org record, copying everything out of v.
func decodeOrg(org OrgID, v []byte, o *Org) error {
	var r orgRec
	if err := parseOrgRec(v, &r); err != nil {
		return err
	}
	*o = Org{
		ID:        org,
		Name:      string(r.name),
		CID:       string(r.cid),
		CreatedAt: r.createdAt,
	}
	if len(r.policy) > 0 {
		o.Policy = bytes.Clone(r.policy)
	}
	if n := len(r.certs) / 32; n > 0 {
		o.CertFingerprints = make([][32]byte, n)
		for i := range o.CertFingerprints {
			copy(o.CertFingerprints[i][:], r.certs[32*i:])
		}
	}
	return nil
}

// OrgByCID returns the organization a publishable client id belongs to.
func (db *DB) OrgByCID(cid []byte) (Org, error) {
	c, err := db.admit(lookupID(cid))
	if err != nil {
		return Org{}, err
	}
	defer c.end()
	var org OrgID
	err = db.get(appendCIDKey(c.key[:0], cid), func(v []byte) error {
		if len(v) != len(org) {
			return ErrCorrupt
		}
		copy(org[:], v)
		return nil
	})
	if err != nil {
		return Org{}, err
	}
	return db.orgByID(&c.scratch, org)
}

// SetOrgPolicy replaces the organization's policy JSON (empty: defaults).
// The store keeps it opaque; the caller validates it with policy.Parse.
func (db *DB) SetOrgPolicy(org OrgID, policyJSON []byte) error {
	if len(policyJSON) > MaxValueBytes {
		return ErrTooLarge
	}
	return db.updateOrg(org, func(r *orgRec) bool {
		r.policy = policyJSON
		return true
	})
}

// MaxCertBindings bounds how many client certificates an organization binds.
const MaxCertBindings = 100

// SetCertBindings replaces the organization's bound client certificates
// (SPKI SHA-256) with spki, in its order, which the caller has checked for
// duplicates; none unbinds them all.
func (db *DB) SetCertBindings(org OrgID, spki [][32]byte) error {
	if len(spki) > MaxCertBindings {
		return ErrTooLarge
	}
	certs := make([]byte, 0, 32*len(spki))
	for i := range spki {
		certs = append(certs, spki[i][:]...)
	}
	return db.updateOrg(org, func(r *orgRec) bool {
		r.certs = certs
		return true
	})
}

// BindCert binds a client certificate (its SPKI SHA-256) to the
// organization: from then on its API keys are accepted only over TLS with a
// bound certificate (the server enforces that). Binding twice is harmless.
func (db *DB) BindCert(org OrgID, spki [32]byte) error {
	return db.updateOrg(org, func(r *orgRec) bool {
		for i := 0; i+32 <= len(r.certs); i += 32 {
			if bytes.Equal(r.certs[i:i+32], spki[:]) {
				return false
			}
		}
		r.certs = append(bytes.Clone(r.certs), spki[:]...)
		return true
	})
}

// updateOrg is the read-modify-write of an org record, serialised per
// organization. fn returns false when there is nothing to write.
func (db *DB) updateOrg(org OrgID, fn func(r *orgRec) bool) error {
	c, err := db.begin(org, nil)
	if err != nil {
		return err
	}
	defer c.end()
	c.hold(db.lock(domainOrg, c.org, ""))
	c.key = appendOrgKey(c.key[:0], c.org)
	write := false
	err = db.get(c.key, func(v []byte) error {
		var r orgRec
		if err := parseOrgRec(v, &r); err != nil {
			return err
		}
		if write = fn(&r); write {
			c.val = appendOrgRec(c.val[:0], &r)
		}
		return nil
	})
	if err != nil || !write {
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Set(c.key, c.val, nil)
	err = db.commit(b)
	db.orgChanged()
	return err
}

// orgRec is an org record; slices alias the value.
type orgRec struct {
	createdAt int64
	name      []byte
	cid       []byte
	policy    []byte
	certs     []byte // n × 32 bytes
}

func appendOrgRec(dst []byte, r *orgRec) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.createdAt))
	dst = appendLP(dst, r.name)
	dst = appendLP(dst, r.cid)
	dst = appendLP(dst, r.policy)
	dst = binary.AppendUvarint(dst, uint64(len(r.certs)/32))
	return append(dst, r.certs...)
}

func parseOrgRec(v []byte, r *orgRec) error {
	*r = orgRec{}
	p := parser{b: v}
	if p.byte1() != tagV1 {
		return ErrCorrupt
	}
	r.createdAt = p.i64()
	r.name = p.lp()
	r.cid = p.lp()
	r.policy = p.lp()
	n := p.uvarint()
	if n > uint64(len(p.b))/32 {
		return ErrCorrupt
	}
	r.certs = p.take(int(n) * 32)
	if !p.done() {
		return ErrCorrupt
	}
	return nil
}
