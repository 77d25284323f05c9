package store

import (
	"bytes"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// Reader is a read view for one request, not safe for concurrent use: the
// reads a request makes before it writes (validate's session, fields,
// template and idempotency lookups) go through one Pebble iterator, created
// on the first read and repositioned by seeking for the next, instead of an
// iterator created and closed per read.
//
// The iterator is a consistent snapshot as of the first read that reaches
// Pebble, so those reads do not see writes made after it: writes never go
// through it, and a caller closes it before a write whose effect a later
// read must observe. Sessions (with their fields) and templates are read
// from the session cache first (sessioncache.go) when it has them; such a
// read answers the latest committed state, each session's record and fields
// together, and opens no iterator. Validate needs no more: the aggregate it
// reads names the template version it was scored against, and a different
// template is rescored.
// While open it counts as a call in flight, so DB.Close waits for it; Close
// releases it (the iterator and the store). A closed Reader may be used
// again: its next read opens a new view. Answers are those of the DB methods
// of the same names, errors included.
type Reader struct {
	db      *DB
	it      *pebble.Iterator
	entered bool
	gen     uint64 // session cache generation noted before it was opened
}

// NewReader returns a Reader of db. It holds nothing until its first read;
// keep it (in a pooled request context, say) and Close it after each
// request's reads.
func (db *DB) NewReader() *Reader { return &Reader{db: db} }

// Close releases the view: its iterator, and its place among the store's
// calls in flight. Closing a closed (or never used) Reader is harmless.
func (r *Reader) Close() error {
	var err error
	if r.it != nil {
		err = r.it.Close()
		r.it = nil
	}
	if r.entered {
		r.entered = false
		r.db.exit()
	}
	return err
}

// open creates the iterator on first use.
func (r *Reader) open() error {
	if r.it != nil {
		return nil
	}
	if !r.entered {
		if err := r.db.enter(); err != nil {
			return err
		}
		r.entered = true
	}
	if r.db.sc != nil {
		// Before the view is taken: a session write that commits after it
		// bumps gen first, and the fill from this view is refused.
		r.gen = r.db.sc.gen.Load()
	}
	it, err := r.db.pdb.NewIter(nil)
	if err != nil {
		return err
	}
	r.it = it
	return nil
}

// read is db.read through the view: the value of key, valid until the next
// read through r. Missing keys are ErrNotFound.
func (r *Reader) read(key []byte) ([]byte, error) {
	if err := r.open(); err != nil {
		return nil, err
	}
	it := r.it
	if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
		if err := it.Error(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	return it.ValueAndErr()
}

// scan calls fn for each record in [lower, upper), in key order; key and
// value are valid only during the call.
func (r *Reader) scan(lower, upper []byte, fn func(k, v []byte) error) error {
	if err := r.open(); err != nil {
		return err
	}
	it := r.it
	// SetBounds copies the bounds; they are dropped again afterwards so the
	// point reads that follow seek the whole keyspace.
	it.SetBounds(lower, upper)
	defer it.SetBounds(nil, nil)
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// readVia is where the shared read paths read: a Reader's view, or (nil
// Reader) an iterator per read, as the DB methods do.
func (db *DB) readVia(r *Reader, key []byte) ([]byte, io.Closer, error) {
	if r == nil {
		return db.read(key)
	}
	v, err := r.read(key)
	if err != nil {
		return nil, nil, err
	}
	return v, noClose{}, nil
}

// noClose is the closer of a value read through a Reader, which stays
// valid until the Reader's next read.
type noClose struct{}

func (noClose) Close() error { return nil }

// SessionInPlace is DB.SessionInPlace through the view.
func (r *Reader) SessionInPlace(org OrgID, csid string, dst *Session) error {
	return r.db.sessionInto(r, org, csid, dst, readInPlace)
}

// SessionFields is DB.SessionFields through the view: the fields of the
// session last read into s, as of the view's snapshot.
func (r *Reader) SessionFields(s *Session, dst []FieldValue) ([]FieldValue, error) {
	return r.db.sessionFields(r, s, dst)
}

// TemplateInto is DB.TemplateInto through the view.
func (r *Reader) TemplateInto(org OrgID, userID string, dst []byte) ([]byte, error) {
	return r.db.templateInto(r, org, userID, dst)
}

// Idempotent is DB.Idempotent through the view. A lookup that must see a
// write made since the view opened (after a commit refused with ErrExists)
// goes to DB.Idempotent instead.
func (r *Reader) Idempotent(org OrgID, key []byte) (Decision, [32]byte, error) {
	return r.db.idempotent(r, org, key)
}
