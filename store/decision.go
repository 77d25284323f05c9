package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Decision is one validate decision as it was answered. It is stored before
// the response is sent (fail closed) and read back by id.
type Decision struct {
	OrgID            OrgID
	ID, CSID, UserID string
	CreatedAt        int64 // unix ms
	Verified         bool  // verifiedAction
	Score            int32 // ivScore
	// Response is the answer as the server keeps it, opaque to the store:
	// a compact record the server renders the JSON answer from
	// (server/decisionrec.go), or, in logs written before records existed,
	// the JSON answer itself.
	Response []byte

	// Template, when not nil, is a face template the decision enrolled for
	// TemplateUser: PutDecision stores it (replacing the user's) in the
	// decision's batch, so a user is enrolled exactly when the decision
	// that enrolled them is stored. Never filled by a read.
	Template     []byte
	TemplateUser string

	// idBuf holds the id AssignDecisionID gives d; ID then refers into it.
	idBuf [DecisionIDLen]byte
}

// PutDecision stores d and, when idemKey is not empty, the idempotency
// record (d.OrgID, idemKey) -> (requestHash, d.ID), in one synced batch. If
// the idempotency key is already taken it stores nothing and answers
// ErrExists: a concurrent request with the same key won, and the caller
// should answer with Idempotent's decision instead. When d.Template is not
// nil the batch also stores it as d.TemplateUser's template, so that
// nothing is enrolled by a decision that was not stored.
func (db *DB) PutDecision(d *Decision, idemKey []byte, requestHash [32]byte) error {
	c, err := db.begin(d.OrgID, decisionArgs(d, idemKey))
	if err != nil {
		return err
	}
	defer c.end()

	b := db.pdb.NewBatch()
	if len(idemKey) > 0 {
		// The stripe makes check-then-write atomic for one key, so of two
		// concurrent requests with the same key exactly one is stored.
		c.hold(db.lockBytes(domainIdem, c.org, idemKey))
		c.key = appendIdempotencyKey(c.key[:0], c.org, idemKey)
		if taken, err := db.idemTaken(c.key); err != nil || taken {
			_ = b.Close()
			if err == nil {
				err = ErrExists
			}
			return err
		}
		c.val = appendIdempotencyRec(c.val[:0], &requestHash, d.ID)
		_ = b.Set(c.key, c.val, nil)
		if at, ok := idemExpiryOf(db, d.ID); ok {
			c.key2 = appendIdemExpiryKey(c.key2[:0], at, c.org, idemKey)
			_ = b.Set(c.key2, nil, nil)
		}
	}
	c.key = appendDecisionKey(c.key[:0], c.org, d.ID)
	c.val = appendDecisionFields(c.val[:0], d.CreatedAt, d.Verified, d.Score, d.CSID, d.UserID, d.Response)
	_ = b.Set(c.key, c.val, nil)
	if d.UserID != "" {
		// In the decision's batch, so the user's audit trail lists exactly
		// the decisions stored.
		c.key = appendDecisionByUserKey(c.key[:0], c.org, d.UserID, d.ID)
		_ = b.Set(c.key, nil, nil)
	}
	if d.Template != nil {
		c.key = appendTemplateKey(c.key[:0], c.org, d.TemplateUser)
		_ = b.Set(c.key, d.Template, nil)
	}
	err = db.commit(b)
	if err == nil && d.Template != nil {
		db.dropTemplate(c.key)
	}
	return err
}

// decisionArgs is PutDecision's argErr.
func decisionArgs(d *Decision, idemKey []byte) error {
	switch {
	case d.ID == "", d.Template != nil && d.TemplateUser == "":
		return ErrEmptyID
	case len(d.ID) > MaxKeyBytes || len(idemKey) > MaxKeyBytes || len(d.CSID) > MaxKeyBytes ||
		len(d.UserID) > MaxKeyBytes || len(d.TemplateUser) > MaxKeyBytes:
		return ErrKeyTooLong
	case len(d.Response) > MaxValueBytes, len(d.Template) > MaxValueBytes:
		return ErrTooLarge
	}
	return nil
}

// Decision returns the organization's decision id. ErrNotFound if there is
// none, including when another organization has one with that id.
func (db *DB) Decision(org OrgID, id string) (Decision, error) {
	c, err := db.begin(org, lookupID(id))
	if err != nil {
		return Decision{}, err
	}
	defer c.end()
	return db.decision(nil, c, org, id)
}

// DecisionsOfUser returns a page of the decisions validate made for the
// user, newest first (the audit trail), and the cursor of the next page
// ("" after the last). Decisions stored before the user index existed are
// not listed; Decision still reads them by id. A user the organization does
// not have, or one it deleted, lists what was decided under that id.
func (db *DB) DecisionsOfUser(org OrgID, userID string, limit int, cursor string) ([]Decision, string, error) {
	c, after, err := db.beginUserPage(org, userID, cursor)
	if err != nil {
		return nil, "", err
	}
	defer c.end()
	var ids []string
	c.key = appendPerUserPrefix(c.key[:0], kindDecisionByUser, c.org, userID)
	next, err := db.scanPage(c.key, after, limit, true, func(id, _ []byte) error {
		if len(id) == 0 {
			return ErrCorrupt
		}
		ids = append(ids, string(id))
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]Decision, len(ids))
	for i, id := range ids {
		if out[i], err = db.decision(nil, c, org, id); err != nil {
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%w: decision %q is indexed but not stored", ErrCorrupt, id)
			}
			return nil, "", err
		}
	}
	return out, next, nil
}

// decision reads through rd, or (nil) an iterator of its own.
func (db *DB) decision(rd *Reader, c *call, org OrgID, id string) (Decision, error) {
	var d Decision
	c.key = appendDecisionKey(c.key[:0], c.org, id)
	err := db.getVia(rd, c.key, func(v []byte) error {
		var r decisionRec
		if err := parseDecisionRec(v, &r); err != nil {
			return err
		}
		d = Decision{
			ID:        id,
			OrgID:     org,
			CSID:      string(r.csid),
			UserID:    string(r.userID),
			CreatedAt: r.createdAt,
			Verified:  r.verified,
			Score:     r.score,
			Response:  bytes.Clone(r.response),
		}
		return nil
	})
	return d, err
}

// decisionRec is a decision record; slices alias the value.
type decisionRec struct {
	createdAt int64
	verified  bool
	score     int32
	csid      []byte
	userID    []byte
	response  []byte
}

// appendDecisionFields encodes a decision record from its parts, so that
// PutDecision encodes a Decision's strings without converting them.
func appendDecisionFields[T string | []byte](dst []byte, createdAt int64, verified bool, score int32, csid, userID T, response []byte) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(createdAt))
	var flags byte
	if verified {
		flags |= flagVerified
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(score))
	dst = appendLP(dst, csid)
	dst = appendLP(dst, userID)
	return append(dst, response...)
}

func parseDecisionRec(v []byte, r *decisionRec) error {
	*r = decisionRec{}
	p := parser{b: v}
	if p.byte1() != tagV1 {
		return ErrCorrupt
	}
	r.createdAt = p.i64()
	flags := p.byte1()
	r.verified = flags&flagVerified != 0
	r.score = int32(p.u32())
	r.csid = p.lp()
	r.userID = p.lp()
	r.response = p.rest()
	if !p.done() || flags&^flagVerified != 0 {
		return ErrCorrupt
	}
	return nil
}
