package store

// What only the tests use: kept out of the store that countersign builds,
// so that its API is what the server and the commands call.

import (
	"github.com/cockroachdb/pebble/v2"
)

// Orgs lists every organization, ordered by id: the tests' way to see
// every org record, damaged ones included.
func (db *DB) Orgs() ([]Org, error) {
	c, err := db.admit(nil)
	if err != nil {
		return nil, err
	}
	defer c.end()
	it, err := db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindOrg},
		UpperBound: []byte{kindOrg + 1},
	})
	if err != nil {
		return nil, err
	}
	var orgs []Org
	for it.First(); it.Valid(); it.Next() {
		p, ok := decodeKey(it.Key())
		if !ok {
			_ = it.Close()
			return nil, ErrCorrupt
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		var o Org
		if err := decodeOrg(p.org, v, &o); err != nil {
			_ = it.Close()
			return nil, err
		}
		orgs = append(orgs, o)
	}
	return orgs, it.Close()
}

// Pending is the number of received frames not yet folded into Aggregate.
func (s *Session) Pending() uint32 { return s.FramesReceived - s.FramesScored }

// appendDecisionRec is appendDecisionFields from a parsed record, for the
// round-trip tests.
func appendDecisionRec(dst []byte, r *decisionRec) []byte {
	return appendDecisionFields(dst, r.createdAt, r.verified, r.score, r.csid, r.userID, r.response)
}
