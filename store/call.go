package store

import "sync"

// call is one call into the store, from begin to end: the organization it
// is for and the buffers it encodes keys and values into. While it lasts it
// counts among the calls in flight, so Close waits for it. Calls are
// pooled so the hot paths allocate neither the call nor its buffers;
// Pebble copies keys and values into its batch, so the buffers are free
// again once a call ends.
type call struct {
	db  *DB
	org OrgID // zero for a call that names no organization (admit)
	// held is the stripe the call serialises its read-modify-write by,
	// unlocked when it ends.
	held *stripe
	// events counts the outbox entries the call added to its batch, so
	// its commit wakes the delivery worker (commitEvents).
	events int
	scratch
}

// scratch holds the buffers one call encodes keys and values into.
type scratch struct {
	key, key2, val, zbuf []byte
}

var callPool = sync.Pool{New: func() any { return new(call) }}

// begin admits a call for the organization org. Its errors come in a
// fixed order: ErrNotFound when org is zero, naming no organization,
// whatever else is wrong with the call; then argErr, the caller's verdict
// on its other arguments (lookupID's for a record id), so that a bad
// argument is answered as such even by a closed store; then ErrClosed or
// ErrFatal. The verdict is a value rather than a check begin runs, so that
// it costs nothing to pass. A nil call comes with every error; every call
// begin returns must end.
func (db *DB) begin(org OrgID, argErr error) (*call, error) {
	if org.IsZero() {
		return nil, ErrNotFound
	}
	c, err := db.admit(argErr)
	if err != nil {
		return nil, err
	}
	c.org = org
	return c, nil
}

// admit is begin for the calls that name no organization by id: those
// that resolve a credential to one, create one, sweep or report, and
// SessionFields, which reads the session an earlier call found.
func (db *DB) admit(argErr error) (*call, error) {
	if argErr != nil {
		return nil, argErr
	}
	if err := db.enter(); err != nil {
		return nil, err
	}
	c := callPool.Get().(*call)
	c.db = db
	return c, nil
}

// end unlocks the stripe the call holds, returns the call to the pool and
// leaves the calls in flight. The call must not be used after.
func (c *call) end() {
	db := c.db
	if c.held != nil {
		c.held.Unlock()
		c.held = nil
	}
	s := &c.scratch
	// Do not keep huge buffers alive in the pool because of one big frame.
	if cap(s.val) > 1<<20 {
		s.val = nil
	}
	if cap(s.zbuf) > 1<<20 {
		s.zbuf = nil
	}
	s.key, s.key2, s.val, s.zbuf = s.key[:0], s.key2[:0], s.val[:0], s.zbuf[:0]
	c.db, c.org, c.events = nil, OrgID{}, 0
	callPool.Put(c)
	db.exit()
}

// hold keeps st, which the caller has locked (DB.lock, DB.lockBytes),
// until the call ends. A call holds one stripe at most: two, taken in no
// fixed order, could deadlock.
func (c *call) hold(st *stripe) { c.held = st }

// lookupID is the argErr of a call that reads the record id names:
// ErrNotFound for an id no record can have (empty, or longer than
// MaxKeyBytes), since a lookup of it finds nothing.
func lookupID[ID string | []byte](id ID) error {
	if len(id) == 0 || len(id) > MaxKeyBytes {
		return ErrNotFound
	}
	return nil
}

// closingBias is subtracted from inflight by Close; far more than calls can
// ever be in flight, so the count stays negative until Close is done.
const closingBias = 1 << 62

// enter admits a call unless the store is closing (ErrClosed) or has failed
// (ErrFatal, with ErrFull when the disk is full: failure.go); every admitted call must call db.exit. Methods enter
// through begin or admit; a Reader enters once for all its reads.
func (db *DB) enter() error {
	db.yield.touch()
	if db.inflight.Add(1) < 0 {
		db.exit()
		return ErrClosed
	}
	if db.dead.Load() {
		db.exit()
		return db.failure()
	}
	return nil
}

func (db *DB) exit() {
	if db.inflight.Add(-1) == -closingBias {
		db.drainedOnce.Do(func() { close(db.drained) })
	}
}
