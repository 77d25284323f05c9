//go:build !race

package biometric

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// The race detector allocates on its own, so these run only without it.

func TestFoldAllocs(t *testing.T) {
	const dim = 512
	r := rand.New(rand.NewPCG(1, 1))
	face := randVec(r, dim)
	tmpl := unitTemplate(face, 1)
	s := NewScorer(DefaultThresholds(), dim)
	a := NewAggregate(dim)
	f := Frame{Type: FaceFrame, Faces: 1, Quality: 0.9, Liveness: 0.95, Embedding: embedding(jitter(r, face, 0.1))}
	// Grow the aggregate's slices once, as a pooled aggregate would have.
	for i := range 300 {
		f.Seq, f.TS = uint64(i), int64(i)*100
		binary.LittleEndian.PutUint32(f.Embedding[4*dim-4:], uint32(i)) // another frame each time
		s.Fold(a, &f, tmpl)
	}
	a.Reset(dim)
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		i++
		f.Seq, f.TS = uint64(i), int64(i)*100
		binary.LittleEndian.PutUint32(f.Embedding[4*dim-4:], uint32(i))
		s.Fold(a, &f, tmpl)
	})
	if allocs != 0 {
		t.Fatalf("Fold allocates %v times per frame", allocs)
	}
	if a.Face.Compared == 0 {
		t.Fatal("frames were not compared with the template")
	}
}

func TestEncodingAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	a, _ := session(t, 512, 3, unitTemplate(randVec(r, 512), 4))
	buf := make([]byte, 0, 64<<10)
	var b Aggregate
	if err := b.Decode(a.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		buf = a.AppendBinary(buf[:0])
		if err := b.Decode(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendBinary+Decode allocate %v times", allocs)
	}
}
