package policy

import (
	"math"

	"github.com/countersign/countersign/engine/biometric"
)

// Input is what one validate decision is made from.
type Input struct {
	ValuesCollected, ValuesMatch bool
	Agg                          *biometric.Aggregate // never nil (an empty aggregate when no frames)
	Enrolled                     bool                 // the user named in the request has a template (after any enrollment in this request)
	UserMismatch                 bool                 // validate's userID differs from the session's
	ActionMismatch               bool                 // validate's action differs from the session's
	// FreshTemplate: the template was created from this very session (the
	// user had none before), so a match against it proves nothing.
	FreshTemplate bool
}

// ViolationCount is one entry of iv_policy_violations.violations.
type ViolationCount struct {
	Kind     biometric.Kind
	Count    uint32
	FirstSeq uint64
}

// TypeInfo is one entry of iv_biometrics_info: the frames of one type.
// MeanSimilarity is the mean cosine to the template of the frames compared
// with one (0 when none was); MeanLiveness is over all the type's frames.
type TypeInfo struct {
	Type                         biometric.FrameType
	Frames, Verified             uint32
	MeanSimilarity, MeanLiveness float32
	FirstTS, LastTS              int64
}

// Verdict is every indicator DESIGN lists plus ivScore and verifiedAction; slices reused.
type Verdict struct {
	ValuesCollected, ValuesMatch, BiometricsCollected, BiometricsMatch, Liveness,
	SpoofDetected, UserEnrolled, IDVMatching, DriverLicenseCollected, IDLiveLiveness,
	RegularLiveness, HasViolations, VerifiedAction bool
	Violations     []ViolationCount // only kinds with Count > 0, in Kind order
	TotalFrames    uint32
	VerifiedFrames uint32
	Info           []TypeInfo // one per frame type that has frames: face first, then document
	Score          int        // ivScore
}

// emptyAgg stands in for a nil Input.Agg, so that a caller's mistake yields
// "no biometrics" rather than a panic. It is only read.
var emptyAgg biometric.Aggregate

// Evaluate computes the verdict. Zero allocations in steady state (once
// out's slices have grown). The indicators, with t the policy's thresholds
// and a the aggregate:
//
//   - total_frames, verified_frames: a's face frames, and those verified.
//   - iv_is_biometrics_collected: a face frame with at least one face.
//   - iv_user_enrolled: in.Enrolled.
//   - iv_is_biometrics_match: enrolled, no user mismatch (the frames were
//     compared with the session user's template, not the requested user's),
//     not a fresh template (in.FreshTemplate: frames matched against a
//     template built from themselves prove nothing), a was scored against one
//     template (not none, not mixed: a caller that forgot to rescore gets
//     false, not a match against no template), verified >= t.MinVerifiedFrames
//     and verified/total >= t.MinVerifiedRatio.
//   - regular_liveness: the mean device liveness of the one-face frames is at
//     least t.Liveness (false with no such frame).
//   - iv_liveness: regular_liveness, no replayed_frame or static_stream, and at
//     least t.MinVerifiedFrames one-face frames with liveness >= t.Liveness.
//   - iv_spoof_detected: a replayed_frame or static_stream violation.
//   - driverLicenseCollected: a driver_license document frame.
//   - idlive_liveness: a document frame with liveness >= t.Liveness.
//   - idv_matching: the cosine of the best document frame to the mean of the
//     verified face frames is at least t.IDVMatch (false without either).
//   - has_violations: any violation, user_mismatch (in.UserMismatch) and
//     action_mismatch (in.ActionMismatch) included.
//
// ivScore adds each true indicator's weight; "no violations" counts only when
// there is at least one face frame, so that a session without biometrics
// earns nothing for having no biometric violations. verifiedAction is, under
// VerdictFull, values match AND biometrics match AND iv_liveness AND no
// violations AND ivScore >= MinScore; under VerdictValuesOnly, values match
// AND no violations AND ivScore >= MinScore (MinScore 0 unless set).
func (c *Compiled) Evaluate(in *Input, out *Verdict) {
	a := in.Agg
	if a == nil {
		a = &emptyAgg
	}
	t := &c.p.Thresholds
	f := &a.Face

	out.ValuesCollected = in.ValuesCollected
	out.ValuesMatch = in.ValuesMatch
	out.TotalFrames = f.Frames
	out.VerifiedFrames = f.Verified
	out.BiometricsCollected = a.FacePresent > 0
	out.UserEnrolled = in.Enrolled
	tv := a.TemplateVersion()
	out.BiometricsMatch = in.Enrolled && !in.UserMismatch && !in.FreshTemplate && tv != 0 && tv != biometric.MixedTemplates &&
		t.Matches(f.Verified, f.Frames)
	out.RegularLiveness = a.OneFace > 0 &&
		float32(a.OneFaceLivenessSum/float64(a.OneFace)) >= t.Liveness // float32, like the threshold
	out.SpoofDetected = a.Violations[biometric.ReplayedFrame].Count > 0 ||
		a.Violations[biometric.StaticStream].Count > 0
	out.Liveness = out.RegularLiveness && !out.SpoofDetected &&
		int64(a.LiveOneFace) >= int64(t.MinVerifiedFrames)
	out.DriverLicenseCollected = a.DriverLicense
	out.IDLiveLiveness = a.Document.Frames > 0 && a.DocumentMaxLiveness >= t.Liveness
	out.IDVMatching = idvMatching(a, t.IDVMatch)

	out.Violations = out.Violations[:0]
	for k := range a.Violations {
		if v := &a.Violations[k]; v.Count > 0 {
			out.Violations = append(out.Violations, ViolationCount{Kind: biometric.Kind(k), Count: v.Count, FirstSeq: v.FirstSeq})
		}
	}
	if in.UserMismatch && a.Violations[biometric.UserMismatch].Count == 0 {
		// A property of the request, not of a frame: count 1, no seq. (Kind
		// order holds: user_mismatch is the last kind an aggregate counts.)
		out.Violations = append(out.Violations, ViolationCount{Kind: biometric.UserMismatch, Count: 1})
	}
	if in.ActionMismatch {
		// The session was collected for another action: what the user saw
		// and approved was not this. Like user_mismatch, and after it.
		out.Violations = append(out.Violations, ViolationCount{Kind: biometric.ActionMismatch, Count: 1})
	}
	out.HasViolations = len(out.Violations) > 0

	out.Info = out.Info[:0]
	if f.Frames > 0 {
		out.Info = append(out.Info, info(biometric.FaceFrame, f))
	}
	if a.Document.Frames > 0 {
		out.Info = append(out.Info, info(biometric.DocumentFrame, &a.Document))
	}

	score := 0
	for i, on := range [numWeights]bool{
		out.ValuesCollected, out.ValuesMatch, out.BiometricsCollected, out.BiometricsMatch, out.Liveness,
		!out.HasViolations && f.Frames > 0, out.UserEnrolled, out.IDVMatching, out.IDLiveLiveness, out.RegularLiveness,
	} {
		if on {
			score += c.w[i]
		}
	}
	out.Score = score

	ok := out.ValuesMatch && !out.HasViolations && score >= c.p.MinScore
	if c.p.Verdict == VerdictFull {
		ok = ok && out.BiometricsMatch && out.Liveness
	}
	out.VerifiedAction = ok
}

// idvMatching compares the best document frame (a unit vector) with the
// direction of the sum of the verified face frames: their cosine is the dot
// product divided by the sum's length, two passes of Dot instead of one of
// Cosine, which is slower (it also measures the unit vector).
func idvMatching(a *biometric.Aggregate, threshold float32) bool {
	if len(a.DocumentBest) == 0 || a.Face.Verified == 0 || len(a.VerifiedSum) != len(a.DocumentBest) {
		return false
	}
	n2 := float64(biometric.Dot(a.VerifiedSum, a.VerifiedSum))
	if !(n2 > 0) {
		return false
	}
	return float32(float64(biometric.Dot(a.DocumentBest, a.VerifiedSum))/math.Sqrt(n2)) >= threshold
}

func info(typ biometric.FrameType, s *biometric.TypeStats) TypeInfo {
	ti := TypeInfo{
		Type: typ, Frames: s.Frames, Verified: s.Verified,
		MeanLiveness: float32(s.LivenessSum / float64(s.Frames)),
		FirstTS:      s.FirstTS, LastTS: s.LastTS,
	}
	if s.Compared > 0 {
		ti.MeanSimilarity = float32(s.SimilaritySum / float64(s.Compared))
	}
	return ti
}
