package store

import (
	"encoding/binary"
)

// Record formats. Each structured value starts with a tag naming its format;
// the decoders accept exactly these and answer ErrCorrupt for anything else,
// including a value that is too short or has bytes left over.
//
//	session     03 flags created:8 expires:8 received:4 scored:4 tokenHash:32 lp(userID) lp(action)
//	            01 flags created:8 expires:8 received:4 scored:4 tokenHash:32 lp(userID) lp(action) aggregate...
//	                                                              (written before the aggregate had its own record; read still)
//	tombstone   02 flags created:8 expires:8
//	org         01 created:8 lp(name) lp(cid) lp(policy) uvarint(n) n×certSPKI:32
//	api key     01 org:8 keyHash:32 created:8                 (a backend key)
//	            02 org:8 keyHash:32 created:8 scope           (a key of another scope)
//	field       01 ts:8 value...
//	decision    01 created:8 flags score:4 lp(csid) lp(userID) response...
//	idempotency 01 requestHash:32 decisionID...
//	webhook     01 created:8 format events lp(url) sealed...   (webhooks.go)
//	outbox      01 created:8 attempts event body...            (outbox.go)
//	delivery    01 at:8 attempt outcome status:2 latency:8 event lp(eventID) error...
//
// Integers are big-endian two's complement. "..." runs to the end of the
// value. Flags: session bit 0 final, bit 1 (format 03 only) an aggregate
// record exists; decision bit 0 verified.
//
// Each format's encoder and decoder sit with the rest of its family
// (session.go, org.go, credentials.go, fields.go, decision.go,
// idempotency.go); the tags and the parser below are theirs to share.
const (
	tagV1        byte = 0x01
	tagTombstone byte = 0x02
	tagSession   byte = 0x03 // a session record without its aggregate

	flagFinal     byte = 1 << 0
	flagAggregate byte = 1 << 1
	flagVerified  byte = 1 << 0

	apiKeyRecLen       = 1 + 8 + 32 + 8
	fieldHeaderLen     = 1 + 8
	idempotencyHeadLen = 1 + 32
)

// parser reads a value front to back. The first short read marks it bad and
// every later read returns zeros, so decoders check once at the end instead
// of after every part, and no read can index out of range.
type parser struct {
	b   []byte
	bad bool
}

func (p *parser) take(n int) []byte {
	if p.bad || n < 0 || n > len(p.b) {
		p.bad = true
		return nil
	}
	v := p.b[:n:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) byte1() byte {
	if v := p.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (p *parser) u32() uint32 {
	if v := p.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (p *parser) i64() int64 {
	if v := p.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (p *parser) uvarint() uint64 {
	if p.bad {
		return 0
	}
	n, w := binary.Uvarint(p.b)
	if w <= 0 {
		p.bad = true
		return 0
	}
	p.b = p.b[w:]
	return n
}

// lp reads a length-prefixed part.
func (p *parser) lp() []byte {
	n := p.uvarint()
	if n > uint64(len(p.b)) {
		p.bad = true
		return nil
	}
	return p.take(int(n))
}

func (p *parser) rest() []byte { return p.take(len(p.b)) }

// done reports whether every read succeeded and nothing is left over.
func (p *parser) done() bool { return !p.bad && len(p.b) == 0 }
