package biometric

import (
	"encoding/binary"
	"math"
)

// MaxDim is the largest embedding dimension supported. It bounds what a
// decoder may be asked to allocate for one stored aggregate or template.
const MaxDim = 4096

// Cosine returns the cosine similarity of a and b: their dot product divided
// by the product of their lengths, or 0 when either is all zeros. Only the
// first min(len(a), len(b)) components are used.
//
// It is on the hot path (every face frame, every idv_matching) so it makes one
// pass with four independent accumulators per sum, so that additions do not
// wait on each other, and re-slices both inputs to the same length first so
// that the compiler drops every bounds check in the loop. Sums are float32:
// for unit-scale embeddings of a few hundred components the error is ~1e-6,
// far below any threshold's meaning.
func Cosine(a, b []float32) float32 {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	var d0, d1, d2, d3, p0, p1, p2, p3, q0, q1, q2, q3 float32
	for len(a) >= 4 && len(b) >= 4 {
		d0 += a[0] * b[0]
		d1 += a[1] * b[1]
		d2 += a[2] * b[2]
		d3 += a[3] * b[3]
		p0 += a[0] * a[0]
		p1 += a[1] * a[1]
		p2 += a[2] * a[2]
		p3 += a[3] * a[3]
		q0 += b[0] * b[0]
		q1 += b[1] * b[1]
		q2 += b[2] * b[2]
		q3 += b[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		d0 += a[i] * b[i]
		p0 += a[i] * a[i]
		q0 += b[i] * b[i]
	}
	d := (d0 + d1) + (d2 + d3)
	p := float64((p0 + p1) + (p2 + p3))
	q := float64((q0 + q1) + (q2 + q3))
	if p == 0 || q == 0 {
		return 0
	}
	return float32(float64(d) / math.Sqrt(p*q))
}

// Dot returns the dot product of a and b over their common length. For unit
// vectors (normalised frames and templates) it is their cosine, at a third
// of Cosine's cost: eight accumulators, no bounds checks in the loop.
func Dot(a, b []float32) float32 {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	for len(a) >= 8 && len(b) >= 8 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		s4 += a[4] * b[4]
		s5 += a[5] * b[5]
		s6 += a[6] * b[6]
		s7 += a[7] * b[7]
		a, b = a[8:], b[8:]
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// normalize decodes the little-endian float32 embedding src into dst and
// scales it to unit length. It reports false, leaving dst unspecified, when
// src is not exactly 4*len(dst) bytes, dst is empty, or the embedding has a
// non-finite component or is all zeros: such an embedding has no direction.
// The length is computed in float64, where no finite float32 overflows or
// underflows when squared, so tiny and huge embeddings normalise correctly.
func normalize(dst []float32, src []byte) bool {
	n := len(dst)
	if n == 0 || len(src) != 4*n {
		return false
	}
	var s0, s1, s2, s3 float64
	d, b := dst, src
	for len(d) >= 4 && len(b) >= 16 {
		x0 := math.Float32frombits(binary.LittleEndian.Uint32(b[0:4]))
		x1 := math.Float32frombits(binary.LittleEndian.Uint32(b[4:8]))
		x2 := math.Float32frombits(binary.LittleEndian.Uint32(b[8:12]))
		x3 := math.Float32frombits(binary.LittleEndian.Uint32(b[12:16]))
		d[0], d[1], d[2], d[3] = x0, x1, x2, x3
		s0 += float64(x0) * float64(x0)
		s1 += float64(x1) * float64(x1)
		s2 += float64(x2) * float64(x2)
		s3 += float64(x3) * float64(x3)
		d, b = d[4:], b[16:]
	}
	for len(d) >= 1 && len(b) >= 4 {
		x := math.Float32frombits(binary.LittleEndian.Uint32(b))
		d[0] = x
		s0 += float64(x) * float64(x)
		d, b = d[1:], b[4:]
	}
	ss := (s0 + s1) + (s2 + s3)
	if !(ss > 0) || math.IsInf(ss, 0) {
		return false
	}
	scaleTo(dst, 1/math.Sqrt(ss))
	return true
}

// normalizeVec scales v to unit length in place, in float64 for the same
// reason as normalize. It reports false when v is zero or not finite.
func normalizeVec(v []float32) bool {
	var s0, s1, s2, s3 float64
	w := v
	for len(w) >= 4 {
		s0 += float64(w[0]) * float64(w[0])
		s1 += float64(w[1]) * float64(w[1])
		s2 += float64(w[2]) * float64(w[2])
		s3 += float64(w[3]) * float64(w[3])
		w = w[4:]
	}
	for _, x := range w {
		s0 += float64(x) * float64(x)
	}
	ss := (s0 + s1) + (s2 + s3)
	if !(ss > 0) || math.IsInf(ss, 0) {
		return false
	}
	scaleTo(v, 1/math.Sqrt(ss))
	return true
}

// scaleTo multiplies v by k in float64 and rounds back, so that a vector that
// is already unit length (k == 1) comes back bit for bit.
func scaleTo(v []float32, k float64) {
	for i := range v {
		v[i] = float32(float64(v[i]) * k)
	}
}

// addTo adds src to dst component by component over their common length.
func addTo(dst, src []float32) {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i := range dst {
		dst[i] += src[i]
	}
}
