package biometric

import (
	"encoding/binary"
	"math"
)

// Template is an enrolled user's face template: unit-length mean embedding.
// Version identifies it: an Aggregate remembers the version its frames were
// scored against, so a caller can see that a template changed and rescore.
type Template struct {
	Version uint64    // nonzero; changes whenever the template changes
	Vec     []float32 // len Dim, unit length
}

// MixedTemplates is what Aggregate.TemplateVersion reports when the frames of
// one aggregate were scored against different templates (or some with and
// some without one). No template may have this version, so a caller that
// compares it with the user's current version always rescores.
const MixedTemplates = math.MaxUint64

// templateFormat is the first byte of a template encoding; bump it when the
// layout changes so that old records are refused, not misread.
const templateFormat = 1

// unitSlack is how far from 1 a decoded template's squared length may be.
// Normalising in float64 and rounding to float32 leaves an error ~1e-7 per
// component; a template off by more than this was not made by Enroll.
const unitSlack = 1e-3

// AppendBinary appends t's encoding to dst: a format byte, Version (uint64),
// the dimension (uint32) and the components (float32 each), little-endian.
func (t *Template) AppendBinary(dst []byte) []byte {
	dst = append(dst, templateFormat)
	dst = binary.LittleEndian.AppendUint64(dst, t.Version)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(t.Vec)))
	for _, x := range t.Vec {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

// Decode reads an encoding made by AppendBinary into t, reusing t.Vec's
// capacity. It refuses (ErrTemplateCorrupt) a wrong format, a version of 0 or
// MixedTemplates, a dimension of 0 or above MaxDim, a length that does not
// match, and a vector that is not finite and unit length. On error t is left
// unchanged. It never panics.
func (t *Template) Decode(src []byte) error {
	version, err := TemplateVersionOf(src)
	if err != nil {
		return err
	}
	dim := binary.LittleEndian.Uint32(src[9:13])
	body := src[13:]
	var ss float64
	for i := 0; i+4 <= len(body); i += 4 {
		x := float64(math.Float32frombits(binary.LittleEndian.Uint32(body[i:])))
		ss += x * x
	}
	if !(math.Abs(ss-1) <= unitSlack) { // NaN and Inf fail here too
		return ErrTemplateCorrupt
	}
	t.Version = version
	t.Vec = resize(t.Vec, int(dim))
	for i := range t.Vec {
		t.Vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return nil
}

// TemplateVersionOf returns the version of the template encoded in src,
// checking everything Decode checks but the components: the format, the
// version, the dimension and the length. It is for a caller that only needs
// to know which template is current (validate, when the frames were scored
// against it already); whatever uses the vector decodes it with Decode,
// which checks the components too.
func TemplateVersionOf(src []byte) (uint64, error) {
	if len(src) < 13 || src[0] != templateFormat {
		return 0, ErrTemplateCorrupt
	}
	version := binary.LittleEndian.Uint64(src[1:9])
	dim := binary.LittleEndian.Uint32(src[9:13])
	if version == 0 || version == MixedTemplates || dim == 0 || dim > MaxDim || uint64(len(src)-13) != 4*uint64(dim) {
		return 0, ErrTemplateCorrupt
	}
	return version, nil
}

// resize returns s with length n, reusing its array when it is large enough.
// The contents are unspecified; callers overwrite or clear them.
func resize(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
