package store

import (
	"encoding/binary"
	"sync"
	"unsafe"
)

// DecisionIDLen is the length of NewDecisionID's ids.
const DecisionIDLen = 26

// crockford is Crockford's base32 alphabet: no I, L, O or U, so an id read
// aloud or retyped is unambiguous, and it is in ASCII order, so ids sort as
// their bits do.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewDecisionID returns a 26-character id that sorts by creation time: 48
// bits of unix milliseconds then 80 bits, in Crockford base32 (the ULID
// layout). The 80 bits are random for a store's first id of a millisecond;
// each later id of the same millisecond (or of an earlier one, if the clock
// steps back by up to a second) is the previous id plus one, ULID's
// monotonic mode, so a store's ids rise strictly in the order they were
// made. A larger step back restarts at the clock's time. It panics if
// Options.Rand fails, as crypto/rand would crash the program.
//
// Why strictly: the decision log is the store's main write on the validate
// path, and ids in order make each flushed table of it follow the last
// instead of overlapping it, which spares Pebble compactions (PERF.md,
// "Decision ids in order").
func (db *DB) NewDecisionID() string {
	var out [DecisionIDLen]byte
	return string(db.AppendDecisionID(out[:0]))
}

// AppendDecisionID appends a new decision id (NewDecisionID's format) to
// dst and returns it. It allocates nothing when dst has room.
func (db *DB) AppendDecisionID(dst []byte) []byte {
	var b [16]byte
	ms := uint64(db.nowMs())
	if err := db.lastID.next(ms, &b, db.random); err != nil {
		panic(err)
	}
	return appendDecisionID(dst, &b)
}

// AssignDecisionID gives d a new id (NewDecisionID's format) without
// allocating a string for it: the id's bytes are kept inside d, and d.ID is
// a view of them. So d.ID is valid only as long as d is neither overwritten
// nor given another id; copying d copies the bytes but not the view. A
// caller that keeps the id longer copies it (strings.Clone). The validate
// path uses it on the Decision its pooled context reuses.
func (db *DB) AssignDecisionID(d *Decision) {
	db.AppendDecisionID(d.idBuf[:0])
	d.ID = unsafe.String(&d.idBuf[0], len(d.idBuf))
}

// appendDecisionID encodes 128 bits as 26 base32 digits, most significant
// first (the first digit carries only 3 bits).
func appendDecisionID(dst []byte, b *[16]byte) []byte {
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for i := 0; i < DecisionIDLen; i++ {
		shift := uint(5 * (DecisionIDLen - 1 - i))
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift == 0:
			v = lo
		default:
			v = lo>>shift | hi<<(64-shift)
		}
		dst = append(dst, crockford[v&31])
	}
	return dst
}

// decisionIDTime returns the unix ms a decision id was made at: the first
// 48 of its 128 bits (AppendDecisionID), its first ten digits. False for
// an id of another form.
func decisionIDTime[ID string | []byte](id ID) (int64, bool) {
	if len(id) != DecisionIDLen || crockfordValue[id[0]] > 7 { // the first digit holds 3 bits
		return 0, false
	}
	var ms int64
	for i := range DecisionIDLen {
		v := crockfordValue[id[i]]
		if v < 0 {
			return 0, false
		}
		if i < 10 {
			ms = ms<<5 | int64(v)
		}
	}
	return ms, true
}

// crockfordValue maps a digit of crockford to its value, anything else to -1.
var crockfordValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for v := range len(crockford) {
		t[crockford[v]] = int8(v)
	}
	return t
}()

// idClock makes a store's decision ids rise strictly (NewDecisionID).
type idClock struct {
	mu     sync.Mutex
	ms     uint64 // the last id's milliseconds
	hi     uint16 // and its 80 low bits
	lo     uint64
	issued bool
	// rnd receives the random bits under mu: the caller's array handed to
	// an io.Reader would escape to the heap on every id.
	rnd [10]byte
}

// maxIDClockBack is how far, in milliseconds, the clock may step back while
// ids go on rising from the last one. A larger step restarts at the clock's
// time: one reading far ahead must not date every later id (an idempotency
// key's expiry is read from its decision's id).
const maxIDClockBack = 1000

// next writes into b the id after the last for the time ms: fresh random
// bits in a later millisecond (or after a step back of more than
// maxIDClockBack), else the last id plus one (past the last 80-bit value,
// the next millisecond with fresh bits). On an error nothing changes.
func (c *idClock) next(ms uint64, b *[16]byte, random func([]byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	hi, lo := c.hi, c.lo
	fresh := !c.issued || ms > c.ms || c.ms-ms > maxIDClockBack
	if !fresh {
		ms = c.ms
		if lo++; lo == 0 {
			if hi++; hi == 0 {
				ms, fresh = ms+1, true
			}
		}
	}
	if fresh {
		if err := random(c.rnd[:]); err != nil {
			return err
		}
		hi, lo = binary.BigEndian.Uint16(c.rnd[:2]), binary.BigEndian.Uint64(c.rnd[2:])
	}
	c.ms, c.hi, c.lo, c.issued = ms, hi, lo, true
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	binary.BigEndian.PutUint16(b[6:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return nil
}
