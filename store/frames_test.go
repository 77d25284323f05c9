package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
)

func TestFramesRoundTrip(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	for post := 0; post < 5; post++ {
		var frames [][]byte
		for i := 0; i < post; i++ {
			f := make([]byte, 2048+rng.IntN(2048)) // a 512-d embedding plus header: incompressible
			for j := range f {
				f[j] = byte(rng.Uint32())
			}
			if i%2 == 1 {
				f = bytes.Repeat([]byte{byte(post)}, 3000) // compressible
			}
			frames = append(frames, f)
		}
		first := must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, frames, false))
		if int(first) != len(want) {
			t.Fatalf("first index %d, want %d", first, len(want))
		}
		want = append(want, frames...)
	}
	want = append(want, make([]byte, MaxFrameBytes)) // the largest allowed frame
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, want[len(want)-1:], false))

	for _, from := range []uint32{0, 3, uint32(len(want) - 1), uint32(len(want)), 1000} {
		next := from
		check(t, db.Frames(o.ID, "csid-0001", from, func(i uint32, raw []byte) error {
			if i != next || !bytes.Equal(raw, want[i]) {
				t.Fatalf("from %d: frame %d (want %d) differs", from, i, next)
			}
			next++
			return nil
		}))
		if int(next) < len(want) && from < uint32(len(want)) {
			t.Fatalf("from %d: stopped at %d of %d", from, next, len(want))
		}
	}
	stop := errors.New("stop")
	n := 0
	err := db.Frames(o.ID, "csid-0001", 0, func(uint32, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: %v after %d", err, n)
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-0001")); int(s.FramesReceived) != len(want) || s.Pending() != s.FramesReceived {
		t.Fatalf("session %+v", s)
	}
}

// TestFramesStoredCompressedStillRead: frames are stored as given now, and
// one stored zstd-compressed by an earlier version reads back the same, so
// a store written before can still rescore and enroll from its frames.
func TestFramesStoredCompressedStillRead(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-frames")
	old, now := []byte("frame stored compressed"), []byte("frame stored as given")
	if _, err := db.AppendEvents(o.ID, "csid-frames", nil, [][]byte{now}, false); err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil)
	check(t, err)
	check(t, db.pdb.Set(appendFrameKey(nil, o.ID, "csid-frames", 1), enc.EncodeAll(old, nil), pebble.Sync))
	check(t, enc.Close())
	var got [][]byte
	check(t, db.Frames(o.ID, "csid-frames", 0, func(_ uint32, raw []byte) error {
		got = append(got, bytes.Clone(raw))
		return nil
	}))
	if len(got) != 2 || !bytes.Equal(got[0], now) || !bytes.Equal(got[1], old) || db.DamagedFrames() != 0 {
		t.Fatalf("frames %q, %d damaged", got, db.DamagedFrames())
	}
}
