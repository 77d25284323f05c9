package biometric

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Scorer folds frames under one organization's thresholds for one embedding
// dimension. Not safe for concurrent use (scratch); create one per worker.
type Scorer struct {
	t    Thresholds
	dim  int
	cur  []float32  // the frame being scored, unit length
	mean []float32  // Enroll: sum, then mean, of the good frames
	last []float32  // Enroll: the previous good frame
	agg  *Aggregate // Enroll: the session's fold
}

// NewScorer returns a scorer for embeddings of dim components under t. t
// should have passed Validate; dim should be in [1, MaxDim], otherwise no
// embedding is usable and no face frame is ever verified.
func NewScorer(t Thresholds, dim int) *Scorer {
	if dim < 1 || dim > MaxDim {
		dim = 0
	}
	return &Scorer{t: t, dim: dim, cur: make([]float32, dim)}
}

// Thresholds returns the thresholds s scores with.
func (s *Scorer) Thresholds() Thresholds { return s.t }

// Dim returns the embedding dimension s scores.
func (s *Scorer) Dim() int { return s.dim }

// Matches is the count rule of iv_is_biometrics_match (and of
// re-enrollment): at least MinVerifiedFrames of the face frames are verified
// and verified/frames is at least MinVerifiedRatio. The ratio is computed in
// float32 like the threshold, so 4 of 5 meets 0.80 exactly.
func (t Thresholds) Matches(verified, frames uint32) bool {
	if frames == 0 || int64(verified) < int64(t.MinVerifiedFrames) {
		return false
	}
	return float32(verified)/float32(frames) >= t.MinVerifiedRatio
}

// FoldUnreadable counts a frame whose stored evidence can no longer be read
// (damaged at rest) as a face frame that was not verified. It fails closed:
// the frame lowers verified/total instead of vanishing from it, so damage can
// never make a session look better than its readable frames do (3 good and 1
// damaged is 3 of 4, not 3 of 3). Zero allocations.
func (s *Scorer) FoldUnreadable(a *Aggregate) {
	a.mustBeWhole("FoldUnreadable")
	a.Face.Frames++
}

// Fold scores f and folds it into a. tmpl is nil when the user has no template
// (a template's Version must be nonzero: a records it, see TemplateVersion).
// Frames of one session must be folded in arrival order. Zero allocations
// once a's slices have grown (Reset keeps them).
//
// A face frame is verified when it has exactly one face, quality and liveness
// at or above threshold, a usable embedding, is not a replay, can be
// remembered for replay checks (MaxFrames), and, when tmpl is not nil, its
// cosine to tmpl is at or above FaceMatch. A document frame is verified when
// its quality and liveness are at or above threshold and its embedding is
// usable. The violations it may add are those of Kind, except UserMismatch:
//
//   - no_face, multiple_faces: a face frame with 0 (or a negative count), or more than 1, face.
//   - liveness_failed: a face frame with at least one face and liveness below threshold.
//   - face_mismatch: tmpl is not nil, one face, cosine to tmpl below FaceMatch.
//   - replayed_frame: a face frame with a face whose embedding bytes equal those of an
//     earlier such frame (compared by a 64-bit hash, see below).
//   - static_stream: see StaticCosine and StaticRun.
//   - frame_gap: a face frame whose ts is more than MaxFrameGapMs after the latest face
//     frame ts before it (exactly MaxFrameGapMs is fine).
//   - out_of_order: a frame, after the first, whose seq is not greater than every seq
//     before it, or whose ts is earlier than the latest ts before it. Comparing with the
//     high-water marks, not only the immediately preceding frame, means one stray frame
//     cannot make the frames after it look ordered again.
//
// Each violation is counted once per frame that raises it. Replays are
// detected by a 64-bit hash of the embedding bytes: with at most MaxFrames
// (2^12) remembered frames, the chance that two different embeddings of one
// session collide is below 2^24/2^65 = 2^-41 (about 5e-13), and a collision
// can only make a genuine frame look replayed (fail closed), never the reverse.
//
// Quality and liveness outside [0,1] (or NaN) are taken as 0: Validate
// refuses them, and if one slips through it must fail closed without
// poisoning the sums. A frame of an unknown type is ignored.
func (s *Scorer) Fold(a *Aggregate, f *Frame, tmpl *Template) {
	a.mustBeWhole("Fold")
	if f.Type != FaceFrame && f.Type != DocumentFrame {
		return
	}
	if a.dim != s.dim && a.Frames() == 0 {
		a.Reset(s.dim)
	}
	q, l := clampScore(f.Quality), clampScore(f.Liveness)

	var version uint64
	var tvec []float32 // nil when there is no template or it has the wrong dimension
	if tmpl != nil {
		version = tmpl.Version
		if len(tmpl.Vec) == s.dim {
			tvec = tmpl.Vec
		}
	}
	if a.Frames() == 0 {
		a.templateVersion = version
		a.maxSeq = f.Seq
	} else {
		if a.templateVersion != version {
			a.templateVersion = MixedTemplates
		}
		if f.Seq <= a.maxSeq || f.TS < a.latestTS() {
			a.violate(OutOfOrder, f.Seq)
		}
		a.maxSeq = max(a.maxSeq, f.Seq)
	}

	var vec []float32 // the frame's unit embedding; nil when unusable
	if s.dim > 0 && a.dim == s.dim && normalize(s.cur, f.Embedding) {
		vec = s.cur
	}

	if f.Type == DocumentFrame {
		s.foldDocument(a, f, q, l, vec, tmpl != nil, tvec)
		return
	}

	st := &a.Face
	if st.Frames > 0 && f.TS > st.LastTS && uint64(f.TS)-uint64(st.LastTS) > uint64(s.t.MaxFrameGapMs) {
		// The unsigned difference is exact for any two int64s with f.TS > LastTS.
		a.violate(FrameGap, f.Seq)
	}
	st.add(f.TS, l)

	faces := f.Faces
	switch {
	case faces <= 0:
		a.violate(NoFace, f.Seq)
	case faces > 1:
		a.violate(MultipleFaces, f.Seq)
	}
	if faces >= 1 {
		a.FacePresent++
		if l < s.t.Liveness {
			a.violate(LivenessFailed, f.Seq)
		}
	}
	if faces == 1 {
		a.OneFace++
		a.OneFaceLivenessSum += float64(l)
		if l >= s.t.Liveness {
			a.LiveOneFace++
		}
	}
	verified := faces == 1 && q >= s.t.Quality && l >= s.t.Liveness && vec != nil

	if faces >= 1 && vec != nil {
		h := xxhash.Sum64(f.Embedding)
		switch i, found := slices.BinarySearch(a.hashes, h); {
		case found:
			a.violate(ReplayedFrame, f.Seq)
			verified = false
		case len(a.hashes) < MaxFrames:
			a.hashes = slices.Insert(a.hashes, i, h)
		default:
			verified = false // cannot be remembered, so a later replay of it would pass
		}

		if len(a.prev) == len(vec) && Dot(vec, a.prev) >= StaticCosine {
			a.run++
			if a.run == StaticRun {
				a.violate(StaticStream, f.Seq)
			}
		} else {
			a.run = 0
		}
		a.prev = resize(a.prev, len(vec))
		copy(a.prev, vec)
	}

	if faces == 1 && tmpl != nil {
		if vec != nil && tvec != nil {
			sim := Dot(vec, tvec)
			st.Compared++
			st.SimilaritySum += float64(sim)
			if sim < s.t.FaceMatch {
				a.violate(FaceMismatch, f.Seq)
				verified = false
			}
		} else {
			verified = false // no similarity to show, so no match
		}
	}

	if verified {
		st.Verified++
		addTo(a.VerifiedSum, vec)
	}
}

// foldDocument folds a document frame. Its embedding is of the document's
// photo: it is compared with the template when there is one (for
// iv_biometrics_info) and kept when it is the best-quality document frame so
// far, for idv_matching.
func (s *Scorer) foldDocument(a *Aggregate, f *Frame, q, l float32, vec []float32, hasTmpl bool, tvec []float32) {
	st := &a.Document
	st.add(f.TS, l)
	if f.DocType == DocDriverLicense {
		a.DriverLicense = true
	}
	if l > a.DocumentMaxLiveness {
		a.DocumentMaxLiveness = l
	}
	if l >= s.t.Liveness {
		a.DocumentLive = true
	}
	if vec == nil {
		return
	}
	if hasTmpl && tvec != nil {
		st.Compared++
		st.SimilaritySum += float64(Dot(vec, tvec))
	}
	if len(a.DocumentBest) == 0 || q > a.DocumentBestQuality {
		a.DocumentBest = resize(a.DocumentBest, len(vec))
		copy(a.DocumentBest, vec)
		a.DocumentBestQuality = q
	}
	if q >= s.t.Quality && l >= s.t.Liveness {
		st.Verified++
	}
}

// add counts one frame of the type with timestamp ts and liveness l.
func (st *TypeStats) add(ts int64, l float32) {
	if st.Frames == 0 {
		st.FirstTS, st.LastTS = ts, ts
	} else {
		st.FirstTS = min(st.FirstTS, ts)
		st.LastTS = max(st.LastTS, ts)
	}
	st.Frames++
	st.LivenessSum += float64(l)
}

// latestTS returns the latest ts of any frame folded (a has frames).
func (a *Aggregate) latestTS() int64 {
	switch {
	case a.Face.Frames == 0:
		return a.Document.LastTS
	case a.Document.Frames == 0:
		return a.Face.LastTS
	}
	return max(a.Face.LastTS, a.Document.LastTS)
}

// violate counts one violation of kind k raised by the frame seq.
func (a *Aggregate) violate(k Kind, seq uint64) {
	v := &a.Violations[k]
	if v.Count == 0 {
		v.FirstSeq = seq
	}
	v.Count++
}

// clampScore maps a device score into [0,1], NaN to 0.
func clampScore(x float32) float32 {
	switch {
	case x >= 1:
		return 1
	case x >= 0:
		return x
	}
	return 0 // negative or NaN
}

// Refusal says why a session could not enroll ("" = enrolled).
type Refusal string

// Refusals, in the order Enroll checks them.
const (
	// Enrolled: no refusal; the template was made.
	Enrolled Refusal = ""
	// RefusedSpoof: the session has a replayed_frame or static_stream violation.
	RefusedSpoof Refusal = "spoof_detected"
	// RefusedTemplateMismatch: re-enrollment by a session that does not match
	// the current template (a face_mismatch, or too few verified frames).
	RefusedTemplateMismatch Refusal = "template_mismatch"
	// RefusedViolations: the session has any other violation.
	RefusedViolations Refusal = "violations"
	// RefusedTooFewFrames: fewer than MinEnrollFrames good frames.
	RefusedTooFewFrames Refusal = "too_few_frames"
	// RefusedInconsistent: a good frame is farther than FaceMatch from the
	// mean of the good frames (two people, or a face the model cannot pin down).
	RefusedInconsistent Refusal = "inconsistent_frames"
)

// Enroll computes a template from a session's frames in arrival order. current is the
// user's current template or nil; when non-nil the session must match it (re-enrollment).
// version is the new template's version (the caller supplies it: randomness is an argument);
// it must be nonzero and not MixedTemplates.
//
// The session is folded against current, then checked in this order:
//  1. no replayed_frame or static_stream (RefusedSpoof);
//  2. with current: no face_mismatch (RefusedTemplateMismatch);
//  3. no other violation (RefusedViolations);
//  4. at least MinEnrollFrames good frames: face frames with exactly one face, quality and
//     liveness at or above threshold and a usable embedding (RefusedTooFewFrames);
//  5. with current: the session matches it by the iv_is_biometrics_match count rule,
//     Thresholds.Matches (RefusedTemplateMismatch);
//  6. consistency (RefusedInconsistent): the unit mean of the good frames' unit embeddings
//     is not zero, every good frame's cosine to it is at least FaceMatch (the template is
//     close to every frame it is built from), and every good frame's cosine to the good
//     frame before it is at least FaceMatch. The second rule is needed because the first
//     alone accepts an even mix of two people: with two unrelated faces (cosine ~0) each
//     frame's cosine to the mean is ~0.71, above 0.60, and the template would then verify
//     both. Checking every pair would also catch it but costs O(n^2); a mix must switch
//     from one face to the other somewhere, and that consecutive pair fails in O(n).
//
// On success dst holds the template (its Vec reused) and Enroll returns Enrolled; on
// refusal dst is unchanged.
func (s *Scorer) Enroll(frames []Frame, current *Template, version uint64, dst *Template) Refusal {
	if s.agg == nil {
		s.agg = NewAggregate(s.dim)
	}
	a := s.agg
	a.Reset(s.dim)
	for i := range frames {
		s.Fold(a, &frames[i], current)
	}
	v := &a.Violations
	if v[ReplayedFrame].Count > 0 || v[StaticStream].Count > 0 {
		return RefusedSpoof
	}
	if current != nil && v[FaceMismatch].Count > 0 {
		return RefusedTemplateMismatch
	}
	for k := range v {
		if v[k].Count > 0 {
			return RefusedViolations
		}
	}

	s.mean = resize(s.mean, s.dim)
	clear(s.mean)
	n := 0
	for i := range frames {
		if s.good(&frames[i]) {
			addTo(s.mean, s.cur)
			n++
		}
	}
	if n == 0 || n < s.t.MinEnrollFrames {
		return RefusedTooFewFrames
	}
	if current != nil && !s.t.Matches(a.Face.Verified, a.Face.Frames) {
		return RefusedTemplateMismatch
	}
	if !normalizeVec(s.mean) {
		return RefusedInconsistent
	}
	s.last = resize(s.last, s.dim)
	first := true
	for i := range frames {
		if !s.good(&frames[i]) {
			continue
		}
		if Dot(s.cur, s.mean) < s.t.FaceMatch || !first && Dot(s.cur, s.last) < s.t.FaceMatch {
			return RefusedInconsistent
		}
		copy(s.last, s.cur)
		first = false
	}
	dst.Version = version
	dst.Vec = resize(dst.Vec, s.dim)
	copy(dst.Vec, s.mean)
	return Enrolled
}

// good reports whether f is a frame a template may be built from, leaving
// its unit embedding in s.cur.
func (s *Scorer) good(f *Frame) bool {
	return f.Type == FaceFrame && f.Faces == 1 &&
		clampScore(f.Quality) >= s.t.Quality && clampScore(f.Liveness) >= s.t.Liveness &&
		s.dim > 0 && normalize(s.cur, f.Embedding)
}
