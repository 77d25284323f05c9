// Package biometric scores the face and document frames a client SDK collects
// during a session and folds them into a compact per-session Aggregate, from
// which engine/policy computes the biometric indicators of a validate decision.
//
// countersign never sees images: the device's own face model reports, per
// frame, how many faces it found, a quality and a liveness score, and an
// embedding (Dim little-endian float32s). Everything here works on those
// numbers only, and is pure: no clock, no randomness, no I/O. The hot path
// (Scorer.Fold, Aggregate.AppendBinary and Aggregate.Decode) does not allocate
// once its buffers have grown.
package biometric

import (
	"encoding/binary"
	"errors"
	"math"
)

// FrameType says what the camera was pointed at. The zero value is not a valid
// type, so a frame whose type was never set is refused by Validate.
type FrameType uint8

const (
	// FaceFrame is a frame of the user's face, taken while they act.
	FaceFrame FrameType = 1
	// DocumentFrame is a frame of an identity document held up to the camera;
	// its embedding is of the photo on the document.
	DocumentFrame FrameType = 2
)

// ParseFrameType reads the wire name of a frame type ("face", "document").
// Names are exact (case-sensitive), like every enum of the API.
func ParseFrameType(b []byte) (FrameType, bool) {
	switch string(b) { // the compiler does not allocate for a switch on string(b)
	case "face":
		return FaceFrame, true
	case "document":
		return DocumentFrame, true
	}
	return 0, false
}

// String returns the wire name of t, or "unknown".
func (t FrameType) String() string {
	switch t {
	case FaceFrame:
		return "face"
	case DocumentFrame:
		return "document"
	}
	return "unknown"
}

// DocType is the kind of identity document in a document frame. Only a driver
// license has an indicator of its own (driverLicenseCollected); the others
// are kept so that the stored frame says what the device saw.
type DocType uint8

const (
	// DocOther is any document the device could not classify ("other").
	DocOther DocType = iota
	// DocDriverLicense is a driver license ("driver_license").
	DocDriverLicense
	// DocPassport is a passport ("passport").
	DocPassport
	// DocIDCard is a national identity card ("id_card").
	DocIDCard
)

// ParseDocType reads the wire name of a document type. Unknown names are not
// ok: a typo in the SDK must not silently become "other".
func ParseDocType(b []byte) (DocType, bool) {
	switch string(b) {
	case "other":
		return DocOther, true
	case "driver_license":
		return DocDriverLicense, true
	case "passport":
		return DocPassport, true
	case "id_card":
		return DocIDCard, true
	}
	return 0, false
}

// String returns the wire name of d, or "unknown".
func (d DocType) String() string {
	switch d {
	case DocOther:
		return "other"
	case DocDriverLicense:
		return "driver_license"
	case DocPassport:
		return "passport"
	case DocIDCard:
		return "id_card"
	}
	return "unknown"
}

// MaxFaces is the largest face count a frame may report. Anything above is a
// broken device model, not a crowd.
const MaxFaces = 64

// Frame is one frame's evidence as the device's face model reported it.
type Frame struct {
	Seq       uint64
	TS        int64 // unix milliseconds, device clock
	Type      FrameType
	Faces     int32 // faces detected (face frames)
	DocType   DocType
	Quality   float32 // [0,1]
	Liveness  float32 // [0,1]
	Embedding []byte  // raw little-endian float32 x Dim (already base64-decoded)
}

// Errors returned by Frame.Validate, Template.Decode, Aggregate.Decode and
// Thresholds.Validate. The server answers a frame error with 400 and the
// error's text.
var (
	// ErrEmbeddingSize: the embedding is not 4*dim bytes (another model, or truncated).
	ErrEmbeddingSize = errors.New("biometric: embedding has the wrong number of bytes")
	// ErrEmbeddingNotFinite: a component is NaN or infinite, so no similarity is defined.
	ErrEmbeddingNotFinite = errors.New("biometric: embedding has a NaN or infinite component")
	// ErrEmbeddingZero: every component is zero, so the embedding has no direction.
	ErrEmbeddingZero = errors.New("biometric: embedding is all zeros")
	// ErrScoreRange: quality or liveness outside [0,1], or NaN.
	ErrScoreRange = errors.New("biometric: quality and liveness must be between 0 and 1")
	// ErrFaces: a face count below 0 or above MaxFaces.
	ErrFaces = errors.New("biometric: faces must be between 0 and 64")
	// ErrFrameType: a frame type, or document type, this package does not know.
	ErrFrameType = errors.New("biometric: unknown frame type")
	// ErrCorrupt: bytes that Aggregate.AppendBinary cannot have produced.
	ErrCorrupt = errors.New("biometric: corrupt aggregate")
	// ErrTemplateCorrupt: bytes that Template.AppendBinary cannot have produced.
	ErrTemplateCorrupt = errors.New("biometric: corrupt template")
	// ErrThresholds: a threshold out of range (wrapped with the field's name).
	ErrThresholds = errors.New("biometric: invalid thresholds")
)

// Validate checks a frame before it is accepted, so that everything stored
// can be scored: a known type and document type, a face count in [0, MaxFaces],
// quality and liveness in [0,1], and an embedding of exactly 4*dim bytes whose
// components are finite and not all zero (a zero vector has no direction, so
// no similarity). dim must be in [1, MaxDim].
func (f *Frame) Validate(dim int) error {
	if f.Type != FaceFrame && f.Type != DocumentFrame {
		return ErrFrameType
	}
	if f.DocType > DocIDCard {
		return ErrFrameType
	}
	if f.Faces < 0 || f.Faces > MaxFaces {
		return ErrFaces
	}
	if !unit(f.Quality) || !unit(f.Liveness) {
		return ErrScoreRange
	}
	if dim < 1 || dim > MaxDim || len(f.Embedding) != 4*dim {
		return ErrEmbeddingSize
	}
	ss := sumSquares(f.Embedding)
	if math.IsNaN(ss) || math.IsInf(ss, 0) {
		return ErrEmbeddingNotFinite
	}
	if ss == 0 {
		return ErrEmbeddingZero
	}
	return nil
}

// unit reports whether x is in [0,1]; NaN is not.
func unit(x float32) bool { return x >= 0 && x <= 1 }

// sumSquares returns the sum of the squares of the little-endian float32s in
// b, accumulated in float64. The square of any finite float32 is finite and,
// unless the component is zero, nonzero in float64, so the sum is NaN or
// infinite exactly when a component is, and zero exactly when all are.
func sumSquares(b []byte) float64 {
	var s0, s1, s2, s3 float64
	for len(b) >= 16 {
		x0 := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[0:4])))
		x1 := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4:8])))
		x2 := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[8:12])))
		x3 := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[12:16])))
		s0 += x0 * x0
		s1 += x1 * x1
		s2 += x2 * x2
		s3 += x3 * x3
		b = b[16:]
	}
	for len(b) >= 4 {
		x := float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		s0 += x * x
		b = b[4:]
	}
	return (s0 + s1) + (s2 + s3)
}
