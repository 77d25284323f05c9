package client

import (
	"math"
	"testing"
)

func TestEmbeddingEncoding(t *testing.T) {
	const dim = 512
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)+0.5)) / 16
	}
	enc := AppendEmbedding(nil, v)
	if want := (4*dim + 2) / 3 * 4; len(enc) != want {
		t.Fatalf("base64 length %d, want %d", len(enc), want)
	}
	back, err := DecodeEmbedding(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if math.Float32bits(v[i]) != math.Float32bits(back[i]) {
			t.Fatalf("component %d: %v != %v", i, v[i], back[i])
		}
	}
	// Little-endian: 1.0 is 00 00 80 3f.
	if got := string(AppendEmbedding(nil, []float32{1})); got != "AACAPw==" {
		t.Fatalf("1.0 encodes as %q, want AACAPw==", got)
	}
}

func TestDecodeEmbeddingRefusesBadInput(t *testing.T) {
	for _, in := range []string{"not base64!", "AACA"} { // the second is 3 bytes
		if v, err := DecodeEmbedding([]byte(in)); err == nil {
			t.Errorf("DecodeEmbedding(%q) = %v, want an error", in, v)
		}
	}
}
