package biometric

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func BenchmarkCosine512(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x, y := randVec(r, 512), randVec(r, 512)
	b.ReportAllocs()
	var sink float32
	for b.Loop() {
		sink += Cosine(x, y)
	}
	_ = sink
}

func BenchmarkDot512(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x, y := randVec(r, 512), randVec(r, 512)
	b.ReportAllocs()
	var sink float32
	for b.Loop() {
		sink += Dot(x, y)
	}
	_ = sink
}

// BenchmarkFold512 folds one 512-d face frame with a template: normalise,
// compare with the template and the previous frame, hash, remember.
func BenchmarkFold512(b *testing.B) {
	const dim = 512
	r := rand.New(rand.NewPCG(3, 4))
	face := randVec(r, dim)
	tmpl := unitTemplate(face, 1)
	s := NewScorer(DefaultThresholds(), dim)
	a := NewAggregate(dim)
	f := Frame{Type: FaceFrame, Faces: 1, Quality: 0.9, Liveness: 0.95, Embedding: embedding(jitter(r, face, 0.1))}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if i%1024 == 0 { // a session of 1024 frames, then another
			a.Reset(dim)
		}
		f.Seq, f.TS = uint64(i), int64(i)*100
		binary.LittleEndian.PutUint32(f.Embedding[4*dim-4:], uint32(i))
		s.Fold(a, &f, tmpl)
	}
}

// benchAggregate is a 40-frame 512-d session with documents (about 6.6 KB).
func benchAggregate(b *testing.B) *Aggregate {
	r := rand.New(rand.NewPCG(5, 6))
	a, _ := session(b, 512, 7, unitTemplate(randVec(r, 512), 8))
	return a
}

func BenchmarkAppendBinary(b *testing.B) {
	a := benchAggregate(b)
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = a.AppendBinary(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	a := benchAggregate(b)
	enc := a.AppendBinary(nil)
	var d Aggregate
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if err := d.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
