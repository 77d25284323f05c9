package biometric

import (
	"encoding/binary"
	"math"
)

// Kind is a violation type. Order is the order they are reported in.
type Kind uint8

const (
	// NoFace: a face frame in which the device found no face.
	NoFace Kind = iota
	// MultipleFaces: a face frame with more than one face (someone helping).
	MultipleFaces
	// LivenessFailed: a face frame with a face whose liveness is below threshold.
	LivenessFailed
	// FaceMismatch: a one-face frame whose face does not match the user's template.
	FaceMismatch
	// ReplayedFrame: a face frame whose embedding bytes equal an earlier one's.
	ReplayedFrame
	// StaticStream: StaticRun frames in a row each nearly identical to the one
	// before: a photo held to the camera, not a moving face.
	StaticStream
	// FrameGap: a pause longer than MaxFrameGapMs between consecutive face frames.
	FrameGap
	// OutOfOrder: a frame whose seq or ts goes backwards.
	OutOfOrder
	// UserMismatch: validate's userID differs from the session's. Added by
	// engine/policy, never by Fold.
	UserMismatch
	// NumKinds is the number of violation kinds an aggregate counts.
	NumKinds
)

// ActionMismatch: validate's action differs from the session's. Like
// UserMismatch a property of the request, added by engine/policy, never by
// Fold; it comes after NumKinds because an aggregate has a slot for each of
// the NumKinds kinds (its encoding would change with another) and never
// counts this one.
const ActionMismatch = NumKinds

// NumReportedKinds is the number of kinds a verdict may report: every
// kind, ActionMismatch included.
const NumReportedKinds = ActionMismatch + 1

var kindNames = [NumKinds]string{
	"no_face", "multiple_faces", "liveness_failed", "face_mismatch", "replayed_frame",
	"static_stream", "frame_gap", "out_of_order", "user_mismatch",
}

// String returns the wire name of k ("no_face", ... "user_mismatch",
// "action_mismatch"), or "unknown".
func (k Kind) String() string {
	switch {
	case k < NumKinds:
		return kindNames[k]
	case k == ActionMismatch:
		return "action_mismatch"
	}
	return "unknown"
}

// Static-stream detection. A face frame (with a face) is "static" when the
// cosine of its embedding to the previous face-bearing face frame's is at
// least StaticCosine; a static_stream violation is raised when StaticRun
// frames in a row are static, that is, after StaticRun+1 near-identical
// frames (the first one has no predecessor to be static to). A run is counted
// once however long it lasts; a frame that is not static ends it. Frames
// without a face and document frames neither extend nor end a run, so a
// covered lens between two photo frames does not reset the count.
const (
	// StaticCosine is the cosine to its predecessor at or above which a frame is static.
	StaticCosine float32 = 0.9999
	// StaticRun is the number of static frames in a row that is a static stream.
	StaticRun = 5
)

// MaxFrames bounds the replay memory: an aggregate remembers the hashes of at
// most MaxFrames face frames. The server refuses frames past MaxFrames per
// session; if more reach Fold anyway, a face frame that cannot be remembered
// is never verified (fail closed), though it is still checked against the
// frames remembered.
const MaxFrames = 4096

// TypeStats is the fold of the frames of one type.
type TypeStats struct {
	Frames   uint32 // frames of this type
	Verified uint32 // of which verified (see Scorer.Fold)
	// Compared counts the frames compared with a template; SimilaritySum is
	// the sum of their cosine similarities to it.
	Compared      uint32
	SimilaritySum float64
	// LivenessSum is the sum of the device liveness of every frame of the type.
	LivenessSum float64
	// FirstTS and LastTS are the earliest and latest ts seen (0 when Frames is 0).
	FirstTS, LastTS int64
}

// Violation is the count of one violation kind and the seq of the frame that
// first raised it (0 when Count is 0).
type Violation struct {
	Count    uint32
	FirstSeq uint64
}

// Aggregate is the compact per-session fold of every frame scored so far (see
// DESIGN "Frames and biometrics"). Exported fields are read by engine/policy,
// never written outside this package; the binary encoding (AppendBinary) is
// stored per session by the store and read back with Decode.
//
// It holds counts and sums rather than frames so that a validate decision
// costs the same whatever the session's length, plus the little state that
// the next frame's checks need: the previous face embedding (static stream),
// the hashes of the face embeddings seen (replay), and high-water marks of seq
// and ts (order, gaps).
type Aggregate struct {
	Face     TypeStats // face frames
	Document TypeStats // document frames

	// Violations by Kind; UserMismatch is always zero here.
	Violations [NumKinds]Violation

	FacePresent        uint32  // face frames with at least one face
	OneFace            uint32  // face frames with exactly one face
	OneFaceLivenessSum float64 // sum of the liveness of the one-face frames
	LiveOneFace        uint32  // one-face frames with liveness at or above threshold

	DriverLicense bool // a document frame of type driver_license was seen
	// DocumentLive says a document frame had liveness at or above threshold;
	// DocumentMaxLiveness is the highest document liveness seen, for callers
	// that want to apply another threshold.
	DocumentLive        bool
	DocumentMaxLiveness float32
	// DocumentBest is the unit embedding of the document frame with the
	// highest quality (the earliest among equals), DocumentBestQuality its
	// quality; DocumentBest is empty until a document frame with a usable
	// embedding is seen.
	DocumentBest        []float32
	DocumentBestQuality float32
	// VerifiedSum is the sum of the unit embeddings of the verified face
	// frames (len Dim). Its direction is the mean verified face, which
	// idv_matching compares with DocumentBest.
	VerifiedSum []float32

	dim             int
	templateVersion uint64
	maxSeq          uint64    // highest seq seen (the latest ts is the larger LastTS)
	prev            []float32 // unit embedding of the last face frame with a face
	run             uint32    // static frames in a row ending at prev
	hashes          []uint64  // xxhash64 of remembered face embeddings, sorted
	// forPolicy: decoded by DecodeForPolicy, without the state above that
	// only the next frame's checks read; it must not be folded or encoded.
	forPolicy bool
}

// NewAggregate returns an empty aggregate for embeddings of dim components.
func NewAggregate(dim int) *Aggregate {
	a := &Aggregate{}
	a.Reset(dim)
	return a
}

// Reset empties a for a new session (or for rescoring a session against a
// new template: Reset, then fold the stored frames again), keeping the
// capacity of its slices so that a pooled aggregate stops allocating. A dim
// outside [1, MaxDim] is stored as 0: every embedding is then unusable and no
// face frame is verified.
func (a *Aggregate) Reset(dim int) {
	if dim < 1 || dim > MaxDim {
		dim = 0
	}
	vs, db, pv, hs := a.VerifiedSum, a.DocumentBest, a.prev, a.hashes
	*a = Aggregate{}
	a.dim = dim
	a.VerifiedSum = resize(vs, dim)
	clear(a.VerifiedSum)
	a.DocumentBest = db[:0]
	a.prev = pv[:0]
	a.hashes = hs[:0]
}

// Dim returns the embedding dimension a was made for.
func (a *Aggregate) Dim() int { return a.dim }

// Frames returns the number of frames folded so far (face + document).
func (a *Aggregate) Frames() uint32 { return a.Face.Frames + a.Document.Frames }

// TemplateVersion returns the version of the template the frames were scored
// against: 0 when none was (no template, or no frames), MixedTemplates when
// frames were scored against different ones.
func (a *Aggregate) TemplateVersion() uint64 { return a.templateVersion }

// Encoding. Format 1, every number little-endian:
//
//	u8  format (1)            u8  flags (flag* below)
//	u32 dim                   u64 templateVersion
//	u64 maxSeq                u32 run
//	face, document TypeStats: u32 frames, verified, compared; f64 similaritySum,
//	                          livenessSum; i64 firstTS, lastTS
//	u32 facePresent  u32 oneFace  f64 oneFaceLivenessSum  u32 liveOneFace
//	f32 documentMaxLiveness   f32 documentBestQuality
//	NumKinds x (u32 count, u64 firstSeq)
//	dim x f32 verifiedSum
//	dim x f32 documentBest    (only with flagDocBest)
//	dim x f32 prev            (only with flagPrev)
//	u32 n, n x u64 hashes     (strictly increasing)
//
// Fixed-width fields keep the decoder a straight line of bounds-checked reads.
// Decode accepts only what AppendBinary can produce from a consistent
// aggregate, so a decoded aggregate re-encodes to the same bytes.
const (
	aggFormat = 1

	flagDriverLicense = 1 << 0
	flagDocumentLive  = 1 << 1
	flagDocBest       = 1 << 2
	flagPrev          = 1 << 3
	flagAll           = 1<<4 - 1

	// maxCount bounds decoded counters so that Frames() cannot overflow.
	maxCount = 1<<31 - 1
)

// AppendBinary appends a's encoding to dst. It does not allocate when dst has
// room for it: 254 bytes, plus 4*Dim for each of the one to three vectors,
// plus 8 per remembered face frame (about 6.5 KB for a 40-frame 512-d session
// with a document).
func (a *Aggregate) AppendBinary(dst []byte) []byte {
	a.mustBeWhole("AppendBinary")
	var flags byte
	if a.DriverLicense {
		flags |= flagDriverLicense
	}
	if a.DocumentLive {
		flags |= flagDocumentLive
	}
	if len(a.DocumentBest) > 0 {
		flags |= flagDocBest
	}
	if len(a.prev) > 0 {
		flags |= flagPrev
	}
	le := binary.LittleEndian
	dst = append(dst, aggFormat, flags)
	dst = le.AppendUint32(dst, uint32(a.dim))
	dst = le.AppendUint64(dst, a.templateVersion)
	dst = le.AppendUint64(dst, a.maxSeq)
	dst = le.AppendUint32(dst, a.run)
	dst = appendStats(dst, &a.Face)
	dst = appendStats(dst, &a.Document)
	dst = le.AppendUint32(dst, a.FacePresent)
	dst = le.AppendUint32(dst, a.OneFace)
	dst = le.AppendUint64(dst, math.Float64bits(a.OneFaceLivenessSum))
	dst = le.AppendUint32(dst, a.LiveOneFace)
	dst = le.AppendUint32(dst, math.Float32bits(a.DocumentMaxLiveness))
	dst = le.AppendUint32(dst, math.Float32bits(a.DocumentBestQuality))
	for i := range a.Violations {
		dst = le.AppendUint32(dst, a.Violations[i].Count)
		dst = le.AppendUint64(dst, a.Violations[i].FirstSeq)
	}
	dst = appendVec(dst, a.VerifiedSum)
	dst = appendVec(dst, a.DocumentBest)
	dst = appendVec(dst, a.prev)
	dst = le.AppendUint32(dst, uint32(len(a.hashes)))
	for _, h := range a.hashes {
		dst = le.AppendUint64(dst, h)
	}
	return dst
}

func appendStats(dst []byte, s *TypeStats) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, s.Frames)
	dst = le.AppendUint32(dst, s.Verified)
	dst = le.AppendUint32(dst, s.Compared)
	dst = le.AppendUint64(dst, math.Float64bits(s.SimilaritySum))
	dst = le.AppendUint64(dst, math.Float64bits(s.LivenessSum))
	dst = le.AppendUint64(dst, uint64(s.FirstTS))
	dst = le.AppendUint64(dst, uint64(s.LastTS))
	return dst
}

func appendVec(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

// reader is a cursor over an encoding. A read past the end sets bad and
// returns zero, so Decode checks once at the end instead of after each read.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || len(r.b) < n {
		r.bad = true
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) u8() byte {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (r *reader) f32() float32 { return math.Float32frombits(r.u32()) }
func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

// vec reads n float32s into dst (resized, reusing its array), reporting bad
// when they are missing or not finite. It returns the sum of their squares
// (float64) and their largest magnitude, so that the caller can check a unit
// vector or a bound without another pass.
//
// Magnitudes are compared as bit patterns with the sign cleared: for
// non-negative floats the patterns order like the values, an integer max has
// no branches, and every Inf or NaN pattern is at least the all-ones
// exponent, so the one maximum also finds them.
func (r *reader) vec(dst []float32, n int) (_ []float32, ss float64, maxAbs float32) {
	s := r.take(4 * n)
	if s == nil {
		return dst[:0], 0, 0
	}
	dst = resize(dst, n)
	const abs, inf = 1<<31 - 1, 0x7f800000
	var m0, m1 uint32
	var s0, s1 float64
	d := dst
	for len(d) >= 2 && len(s) >= 8 {
		b0, b1 := binary.LittleEndian.Uint32(s[0:4]), binary.LittleEndian.Uint32(s[4:8])
		x0, x1 := math.Float32frombits(b0), math.Float32frombits(b1)
		d[0], d[1] = x0, x1
		s0 += float64(x0) * float64(x0)
		s1 += float64(x1) * float64(x1)
		m0, m1 = max(m0, b0&abs), max(m1, b1&abs)
		d, s = d[2:], s[8:]
	}
	if len(d) >= 1 && len(s) >= 4 {
		b0 := binary.LittleEndian.Uint32(s[0:4])
		d[0] = math.Float32frombits(b0)
		s0 += float64(d[0]) * float64(d[0])
		m0 = max(m0, b0&abs)
	}
	m := max(m0, m1)
	if m >= inf {
		r.bad = true
	}
	return dst, s0 + s1, math.Float32frombits(m)
}

func (r *reader) stats(s *TypeStats) {
	s.Frames = r.u32()
	s.Verified = r.u32()
	s.Compared = r.u32()
	s.SimilaritySum = r.f64()
	s.LivenessSum = r.f64()
	s.FirstTS = int64(r.u64())
	s.LastTS = int64(r.u64())
}

// Decode reads an encoding made by AppendBinary into a, reusing a's slices:
// it does not allocate when they already have capacity for the encoding's
// dimension and hashes. Anything that AppendBinary could not have produced
// from a consistent aggregate (a wrong format or flag, a short or long input,
// a count larger than what contains it, a non-finite or out-of-range number,
// a vector that should be unit length and is not, unsorted hashes, ...) is
// refused with ErrCorrupt, leaving a empty with its previous dimension. It
// never panics, and never allocates more than the input's length justifies.
func (a *Aggregate) Decode(src []byte) error {
	dim := a.dim
	if err := a.decode(src, true); err != nil {
		a.Reset(dim)
		return err
	}
	return nil
}

// DecodeForPolicy is Decode for a caller that only evaluates a policy on a
// (validate): it decodes everything engine/policy reads and skips the state
// that only the next frame's checks use, the previous face embedding and
// the replay hashes, and VerifiedSum unless there is a DocumentBest to
// compare it with (VerifiedSum is then left zero). The lengths of what it
// skips are checked, not their contents, which Decode checks when the
// aggregate is read to be folded into. It refuses what Decode refuses
// otherwise. The result may not be folded into or encoded (Fold and
// AppendBinary panic): Reset it first, as rescoring does.
func (a *Aggregate) DecodeForPolicy(src []byte) error {
	dim := a.dim
	if err := a.decode(src, false); err != nil {
		a.Reset(dim)
		return err
	}
	a.forPolicy = true
	return nil
}

// mustBeWhole panics when a was decoded by DecodeForPolicy: what it left
// out would be lost (AppendBinary) or missed (Fold's replay and static
// checks) without a word.
func (a *Aggregate) mustBeWhole(op string) {
	if a.forPolicy {
		panic("biometric: " + op + " on an aggregate from DecodeForPolicy")
	}
}

// decode reads src into a; whole is false for DecodeForPolicy.
func (a *Aggregate) decode(src []byte, whole bool) error {
	r := reader{b: src}
	if r.u8() != aggFormat {
		return ErrCorrupt
	}
	flags := r.u8()
	dim := r.u32()
	if r.bad || flags&^flagAll != 0 || dim > MaxDim {
		return ErrCorrupt
	}
	a.Reset(int(dim)) // dim is in [0, MaxDim], which Reset keeps as is
	a.DriverLicense = flags&flagDriverLicense != 0
	a.DocumentLive = flags&flagDocumentLive != 0
	a.templateVersion = r.u64()
	a.maxSeq = r.u64()
	a.run = r.u32()
	r.stats(&a.Face)
	r.stats(&a.Document)
	a.FacePresent = r.u32()
	a.OneFace = r.u32()
	a.OneFaceLivenessSum = r.f64()
	a.LiveOneFace = r.u32()
	a.DocumentMaxLiveness = r.f32()
	a.DocumentBestQuality = r.f32()
	for i := range a.Violations {
		a.Violations[i].Count = r.u32()
		a.Violations[i].FirstSeq = r.u64()
	}
	// A sum of Verified unit vectors has no component larger than Verified;
	// the other two vectors are unit length.
	var maxAbs float32
	var ss float64
	if whole || flags&flagDocBest != 0 {
		a.VerifiedSum, _, maxAbs = r.vec(a.VerifiedSum, a.dim)
		if maxAbs > float32(a.Face.Verified)*1.001 {
			return ErrCorrupt
		}
	} else {
		r.take(4 * a.dim) // Reset left VerifiedSum zero
	}
	if flags&flagDocBest != 0 {
		if a.DocumentBest, ss, _ = r.vec(a.DocumentBest, a.dim); !r.bad && !nearOne(ss) {
			return ErrCorrupt
		}
	}
	prevLen := 0
	if flags&flagPrev != 0 {
		prevLen = a.dim
		if !whole {
			r.take(4 * a.dim)
		} else if a.prev, ss, _ = r.vec(a.prev, a.dim); !r.bad && !nearOne(ss) {
			return ErrCorrupt
		}
	}
	n := r.u32()
	if r.bad || n > MaxFrames || uint64(len(r.b)) != 8*uint64(n) {
		return ErrCorrupt
	}
	if whole {
		if cap(a.hashes) < int(n) {
			a.hashes = make([]uint64, 0, n)
		}
		a.hashes = a.hashes[:n]
		for i := range a.hashes {
			a.hashes[i] = binary.LittleEndian.Uint64(r.b[8*i:])
			if i > 0 && a.hashes[i] <= a.hashes[i-1] {
				return ErrCorrupt
			}
		}
	}
	if !a.consistent(prevLen, int(n)) {
		return ErrCorrupt
	}
	return nil
}

// consistent checks the relations Fold maintains between the fields, so that
// a decoded aggregate is one Fold could have built (up to the values of the
// sums) and engine/policy never sees, say, more verified frames than frames
// or a NaN. (The vectors are checked as they are read.) prevLen and nHashes
// are the lengths of prev and hashes in the encoding, which DecodeForPolicy
// does not read into a.
func (a *Aggregate) consistent(prevLen, nHashes int) bool {
	f, d := &a.Face, &a.Document
	if !f.valid() || !d.valid() {
		return false
	}
	total := uint64(a.Frames())
	switch {
	case total == 0 && (a.maxSeq != 0 || a.templateVersion != 0):
		return false
	case a.FacePresent > f.Frames, a.OneFace > a.FacePresent, a.LiveOneFace > a.OneFace,
		f.Verified > a.OneFace, f.Compared > a.OneFace:
		return false
	case !sumIn(a.OneFaceLivenessSum, a.OneFace):
		return false
	case uint64(nHashes) > uint64(a.FacePresent), a.run > a.FacePresent:
		return false
	case prevLen == 0 && a.run != 0, prevLen > 0 && a.FacePresent == 0:
		return false
	case (a.DriverLicense || a.DocumentLive || len(a.DocumentBest) > 0) && d.Frames == 0:
		return false
	case !unit(a.DocumentMaxLiveness), !unit(a.DocumentBestQuality):
		return false
	case d.Frames == 0 && a.DocumentMaxLiveness != 0, len(a.DocumentBest) == 0 && a.DocumentBestQuality != 0:
		return false
	}
	for i := range a.Violations {
		v := &a.Violations[i]
		if uint64(v.Count) > total || (v.Count == 0 && v.FirstSeq != 0) {
			return false
		}
	}
	return a.Violations[UserMismatch].Count == 0
}

// valid checks one type's counters and sums: verified and compared frames
// are among its frames, liveness sums to at most one per frame, similarity
// to at most one in absolute value per compared frame (with float32 slack),
// and timestamps are ordered, or zero when there are no frames.
func (s *TypeStats) valid() bool {
	switch {
	case s.Frames > maxCount, s.Verified > s.Frames, s.Compared > s.Frames:
		return false
	case !sumIn(s.LivenessSum, s.Frames):
		return false
	case !(math.Abs(s.SimilaritySum) <= 1.01*float64(s.Compared)):
		return false
	case s.Frames == 0 && (s.FirstTS != 0 || s.LastTS != 0), s.FirstTS > s.LastTS:
		return false
	}
	return true
}

// sumIn reports whether sum is a possible sum of n scores in [0,1].
func sumIn(sum float64, n uint32) bool { return sum >= 0 && sum <= float64(n) }

// nearOne reports whether a squared length is 1 within unitSlack.
func nearOne(ss float64) bool { return math.Abs(ss-1) <= unitSlack }
