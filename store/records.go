package store

import (
	"encoding/binary"
)

// Record formats. Each structured value starts with a tag naming its format;
// the decoders accept exactly these and answer ErrCorrupt for anything else,
// including a value that is too short or has bytes left over.
//
//	session     01 flags created:8 expires:8 received:4 scored:4 tokenHash:32 lp(userID) lp(action) aggregate...
//	tombstone   02 flags created:8 expires:8
//	org         01 created:8 lp(name) lp(cid) lp(policy) uvarint(n) n×certSPKI:32
//	api key     01 org:8 keyHash:32 created:8
//	field       01 ts:8 value...
//	decision    01 created:8 flags score:4 lp(csid) lp(userID) response...
//	idempotency 01 requestHash:32 decisionID...
//
// Integers are big-endian two's complement. "..." runs to the end of the
// value. Flags: session bit 0 final; decision bit 0 verified.
const (
	tagV1        byte = 0x01
	tagTombstone byte = 0x02

	flagFinal    byte = 1 << 0
	flagVerified byte = 1 << 0

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

// sessionRec is a session record or tombstone; its slices alias the value it
// was parsed from.
type sessionRec struct {
	tombstone        bool
	final            bool
	createdAt        int64
	expiresAt        int64
	received, scored uint32
	tokenHash        [32]byte
	userID, action   []byte
	aggregate        []byte
}

func appendSessionRec(dst []byte, r *sessionRec) []byte {
	tag := tagV1
	if r.tombstone {
		tag = tagTombstone
	}
	var flags byte
	if r.final {
		flags |= flagFinal
	}
	dst = append(dst, tag, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.createdAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.expiresAt))
	if r.tombstone {
		return dst
	}
	dst = binary.BigEndian.AppendUint32(dst, r.received)
	dst = binary.BigEndian.AppendUint32(dst, r.scored)
	dst = append(dst, r.tokenHash[:]...)
	dst = appendLP(dst, r.userID)
	dst = appendLP(dst, r.action)
	return append(dst, r.aggregate...)
}

func parseSessionRec(v []byte, r *sessionRec) error {
	*r = sessionRec{}
	p := parser{b: v}
	tag := p.byte1()
	flags := p.byte1()
	r.createdAt = p.i64()
	r.expiresAt = p.i64()
	switch tag {
	case tagTombstone:
		r.tombstone = true
	case tagV1:
		r.final = flags&flagFinal != 0
		r.received = p.u32()
		r.scored = p.u32()
		copy(r.tokenHash[:], p.take(32))
		r.userID = p.lp()
		r.action = p.lp()
		r.aggregate = p.rest()
	default:
		return ErrCorrupt
	}
	if !p.done() || flags&^flagFinal != 0 || r.scored > r.received {
		return ErrCorrupt
	}
	return nil
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

func appendAPIKeyRec(dst []byte, org orgID, hash *[32]byte, createdAt int64) []byte {
	dst = append(dst, tagV1)
	dst = append(dst, org[:]...)
	dst = append(dst, hash[:]...)
	return binary.BigEndian.AppendUint64(dst, uint64(createdAt))
}

func parseAPIKeyRec(v []byte) (org orgID, hash []byte, err error) {
	if len(v) != apiKeyRecLen || v[0] != tagV1 {
		return org, nil, ErrCorrupt
	}
	copy(org[:], v[1:9])
	return org, v[9:41], nil
}

func appendFieldRec(dst []byte, ts int64, value []byte) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	return append(dst, value...)
}

func parseFieldRec(v []byte) (ts int64, value []byte, err error) {
	if len(v) < fieldHeaderLen || v[0] != tagV1 {
		return 0, nil, ErrCorrupt
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), v[9:], nil
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

func appendDecisionRec(dst []byte, r *decisionRec) []byte {
	return appendDecisionFields(dst, r.createdAt, r.verified, r.score, r.csid, r.userID, r.response)
}

// appendDecisionFields is appendDecisionRec from the parts, so that
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

func appendIdempotencyRec(dst []byte, requestHash *[32]byte, decisionID string) []byte {
	dst = append(dst, tagV1)
	dst = append(dst, requestHash[:]...)
	return append(dst, decisionID...)
}

func parseIdempotencyRec(v []byte) (requestHash [32]byte, decisionID []byte, err error) {
	if len(v) <= idempotencyHeadLen || v[0] != tagV1 {
		return requestHash, nil, ErrCorrupt
	}
	copy(requestHash[:], v[1:33])
	return requestHash, v[33:], nil
}
