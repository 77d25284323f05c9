package simulate

import (
	"bytes"
	"math"
	"testing"

	"github.com/countersign/countersign/client"
)

func TestIdentityDeterministicUnit(t *testing.T) {
	a := NewFaces(DefaultDim, 1).Identity(IdentitySeed("alice"))
	b := NewFaces(DefaultDim, 2).Identity(IdentitySeed("alice"))
	if len(a) != DefaultDim {
		t.Fatalf("dim %d", len(a))
	}
	if !bytes.Equal(client.AppendEmbedding(nil, a), client.AppendEmbedding(nil, b)) {
		t.Fatal("an identity depends on the generator seed, want only on the identity seed")
	}
	if n := norm(a); math.Abs(n-1) > 1e-5 {
		t.Fatalf("identity norm %v, want 1", n)
	}
}

func TestFramesDeterministic(t *testing.T) {
	gen := func() []byte {
		f := NewFaces(DefaultDim, 42)
		id := f.Identity(7)
		var out []byte
		for range 3 {
			out = client.AppendEmbedding(out, f.Genuine(id))
		}
		return out
	}
	if !bytes.Equal(gen(), gen()) {
		t.Fatal("same seed, different frames")
	}
}

// TestCosines checks the geometry the scenarios rely on against DESIGN's
// thresholds: faceMatch 0.60 and the static-stream cosine 0.9999.
func TestCosines(t *testing.T) {
	f := NewFaces(DefaultDim, 3)
	id := f.Identity(IdentitySeed("alice"))
	other := f.Identity(IdentitySeed("mallory"))
	var frames [][]float32
	for range 20 {
		g := f.Genuine(id)
		if n := norm(g); math.Abs(n-1) > 1e-5 {
			t.Fatalf("genuine frame norm %v", n)
		}
		if c := Cosine(g, id); c < 0.85 || c > 0.95 {
			t.Errorf("genuine cosine to identity %.4f, want ~0.90", c)
		}
		frames = append(frames, g)
	}
	for i := 1; i < len(frames); i++ {
		if c := Cosine(frames[i], frames[i-1]); c >= 0.9999 || c < 0.7 {
			t.Errorf("consecutive genuine frames cosine %.5f, want in [0.7, 0.9999)", c)
		}
	}
	// An enrollment template (the normalised mean of five frames) matches a
	// later genuine frame, and not an impostor's.
	tmpl := make([]float32, DefaultDim)
	for _, g := range frames[:5] {
		for i, x := range g {
			tmpl[i] += x
		}
	}
	normalize(tmpl)
	if c := Cosine(tmpl, frames[10]); c < 0.80 {
		t.Errorf("template vs genuine %.4f, want >= 0.80", c)
	}
	if c := Cosine(tmpl, f.Genuine(other)); c > 0.30 {
		t.Errorf("template vs impostor %.4f, want <= 0.30", c)
	}
	if c := Cosine(id, other); math.Abs(c) > 0.25 {
		t.Errorf("two identities cosine %.4f, want ~0", c)
	}

	// A photo: consecutive frames at >= 0.9999, yet never the same bytes.
	base := f.Genuine(id)
	prev := base
	for range 8 {
		s := f.Static(base)
		if c := Cosine(s, prev); c < 0.9999 {
			t.Errorf("static consecutive cosine %.7f, want >= 0.9999", c)
		}
		if bytes.Equal(client.AppendEmbedding(nil, s), client.AppendEmbedding(nil, prev)) {
			t.Error("static frame repeats its predecessor's bytes: that is a replay, not a photo")
		}
		if c := Cosine(s, id); c < 0.85 {
			t.Errorf("photo vs identity %.4f: a photo of the user still matches", c)
		}
		prev = s
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}
