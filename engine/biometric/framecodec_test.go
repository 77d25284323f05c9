package biometric

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

func TestFrameCodec(t *testing.T) {
	emb := embedding(randVec(rand.New(rand.NewPCG(1, 2)), 16))
	in := Frame{Seq: math.MaxUint64, TS: -5, Type: DocumentFrame, Faces: 3,
		DocType: DocPassport, Quality: 0.5, Liveness: 1, Embedding: emb}
	b := AppendFrame(nil, &in)
	if n := FrameLen(b, len(emb)); n != len(b) {
		t.Errorf("FrameLen = %d, want %d", n, len(b))
	}
	var out Frame
	if err := DecodeFrame(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Seq != in.Seq || out.TS != in.TS || out.Type != in.Type || out.Faces != in.Faces || out.DocType != in.DocType ||
		out.Quality != in.Quality || out.Liveness != in.Liveness || !bytes.Equal(out.Embedding, emb) {
		t.Errorf("round trip: %+v", out)
	}
	for i := range len(b) {
		if err := DecodeFrame(b[:i], &out); err == nil {
			t.Errorf("truncated at %d decoded", i)
		}
	}
	if err := DecodeFrame(append(b, 0), &out); err == nil {
		t.Error("a trailing byte decoded")
	}
	bad := append([]byte(nil), b...)
	bad[0] = 9
	if err := DecodeFrame(bad, &out); err == nil {
		t.Error("an unknown version decoded")
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, &Frame{Seq: 1, Type: FaceFrame, Embedding: []byte{1, 2, 3, 4}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		if DecodeFrame(b, &fr) == nil {
			again := AppendFrame(nil, &fr)
			var fr2 Frame
			if err := DecodeFrame(again, &fr2); err != nil {
				t.Fatalf("re-encoding does not decode: %v", err)
			}
		}
	})
}
