package simulate

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// DefaultDim is the embedding dimension countersign serves by default.
const DefaultDim = 512

// Noise levels of the synthetic face model. A face embedding from a device's
// model is a unit vector; frames of one person scatter around that person's
// identity vector, frames of a photo barely move at all.
const (
	// GenuineSpread is the norm of the noise added to an identity vector for one
	// genuine frame, before re-normalising. A random direction in many dimensions
	// is nearly orthogonal to the identity, so the frame's cosine to the identity
	// is 1/sqrt(1+GenuineSpread^2) = 0.90, and two frames are about 0.81 apart:
	// well above the 0.60 face-match threshold, well below the 0.9999 of a
	// static stream.
	GenuineSpread = 0.4843
	// StaticNoise is the per-component noise of a photo held in front of the
	// camera: enough to change the bytes (no replay), far too little to change
	// the direction (consecutive cosine >= 0.9999, a static stream).
	StaticNoise = 1e-6
)

// Faces generates synthetic face embeddings deterministically: the same seed
// gives the same sequence of frames, and an identity depends only on its seed
// and the dimension. Not safe for concurrent use.
type Faces struct {
	dim int
	rng *rand.Rand
}

// NewFaces returns a generator of dim-dimensional embeddings whose frame noise
// is drawn from seed.
func NewFaces(dim int, seed uint64) *Faces {
	if dim <= 0 {
		dim = DefaultDim
	}
	return &Faces{dim: dim, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Dim is the embedding dimension.
func (f *Faces) Dim() int { return f.dim }

// IdentitySeed derives an identity seed from a user id, so a simulated user
// keeps the same face across runs (and re-enrolls consistently).
func IdentitySeed(userID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(userID))
	return h.Sum64()
}

// Identity returns the unit identity vector of the person with the given seed.
// It does not advance the generator's frame noise.
func (f *Faces) Identity(seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x243f6a8885a308d3))
	v := make([]float32, f.dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	normalize(v)
	return v
}

// Genuine returns a new frame of the person whose identity is id: the identity
// plus noise of norm GenuineSpread, re-normalised.
func (f *Faces) Genuine(id []float32) []float32 {
	return f.perturb(id, GenuineSpread/math.Sqrt(float64(len(id))))
}

// Static returns a frame of a photo whose first frame was base: base plus
// StaticNoise per component, re-normalised.
func (f *Faces) Static(base []float32) []float32 {
	return f.perturb(base, StaticNoise)
}

// perturb returns v plus Gaussian noise of standard deviation sigma per
// component, re-normalised.
func (f *Faces) perturb(v []float32, sigma float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) + sigma*f.rng.NormFloat64())
	}
	normalize(out)
	return out
}

// normalize scales v to unit length in place.
func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := 1 / math.Sqrt(s)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
}

// Cosine is the cosine similarity of a and b, computed in float64.
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
