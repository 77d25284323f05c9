package store

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// StoredFrame is a frame as Frames yields it, for callers that collect
// frames rather than handle them in the callback. Raw is the caller's own
// encoding (stored as given; one stored zstd-compressed before is
// decompressed on read);
// Seq is the caller's to fill from that encoding.
type StoredFrame struct {
	Seq   uint64
	Index uint32 // arrival number, 0 for the session's first frame
	Raw   []byte
}

// Frames calls fn with each of the session's frames from arrival index from
// on, as the caller stored them, in arrival order. raw is valid only during the call. An
// error from fn stops the iteration and is returned.
//
// A stored frame that does not decompress (damage) is passed as raw == nil,
// logged and counted (DamagedFrames), and the iteration goes on: the caller
// must treat it as a frame that can never verify, and can still advance
// past its index.
func (db *DB) Frames(org OrgID, csid string, from uint32, fn func(index uint32, raw []byte) error) error {
	c, err := db.begin(org, lookupID(csid))
	if err != nil {
		return err
	}
	defer c.end()
	if err := db.checkSession(c, csid); err != nil {
		return err
	}
	c.key = appendFrameKey(c.key[:0], c.org, csid, from)
	prefix := c.key[:len(c.key)-4]
	c.key2 = prefixEnd(c.key2[:0], prefix)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: c.key, UpperBound: c.key2})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+4 {
			_ = it.Close()
			return ErrCorrupt
		}
		index := binary.BigEndian.Uint32(k[len(prefix):])
		z, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		var raw []byte
		if len(z) > 0 && z[0] == frameStoredRaw {
			raw = z[1:] // valid until Next, past fn
		} else if raw, err = db.zdec.DecodeAll(z, c.zbuf[:0]); err == nil {
			c.zbuf = raw
		}
		if err != nil {
			// One damaged frame must not stop the session for good: the
			// callers count it as received but never verified, and go on.
			db.damagedFrames.Add(1)
			db.log.Error("stored frame does not decompress; skipped as unverified",
				"org", org.String(), "csid", csid, "index", index, "err", err)
			raw = nil
		} else if raw == nil {
			raw = noBytes // an empty frame is not a damaged one
		}
		if err := fn(index, raw); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// frameStoredRaw leads a frame stored as its caller's bytes. Frames were
// once stored zstd-compressed, and still read so; a zstd frame begins with
// its magic number (0x28 first), never 0x00. Float32 embeddings gain a few
// percent from zstd at the cost of encoding each frame and decoding it for
// every rescore, and in blob files (spanPolicy) a frame's bytes are written
// once, so the bytes saved do not pay for the CPU.
const frameStoredRaw byte = 0x00

// appendStoredFrame appends a frame's stored form to dst.
func appendStoredFrame(dst, raw []byte) []byte {
	return append(append(dst, frameStoredRaw), raw...)
}

// noBytes is the raw Frames passes for an empty frame: nil means damaged.
var noBytes = []byte{}

// DamagedFrames counts the stored frames Frames has met that do not
// decompress, since Open (each time it met them).
func (db *DB) DamagedFrames() uint64 { return db.damagedFrames.Load() }
