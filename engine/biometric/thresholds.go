package biometric

import "fmt"

// Thresholds are DESIGN's defaults, overridable per organization. Scores are
// compared "at or above": a frame whose liveness equals Liveness is live. The
// comparisons are made in float32, the precision the device reports in, so
// that a threshold written as 0.80 and a score reported as 0.80 are the same
// number.
type Thresholds struct {
	FaceMatch         float32 // 0.60: cosine to the template for a face frame to match
	Liveness          float32 // 0.80: device liveness for a frame to be live
	Quality           float32 // 0.50: device quality for a frame to count as verified
	MaxFrameGapMs     int64   // 2000: longest allowed pause between consecutive face frames
	MinVerifiedFrames int     // 3: verified (and live) frames for a biometric match
	MinVerifiedRatio  float32 // 0.80: verified / face frames for a biometric match
	IDVMatch          float32 // 0.50: cosine of the best document frame to the verified face frames
	MinEnrollFrames   int     // 5: good frames a session needs to enroll
}

// DefaultThresholds returns DESIGN's defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{
		FaceMatch:         0.60,
		Liveness:          0.80,
		Quality:           0.50,
		MaxFrameGapMs:     2000,
		MinVerifiedFrames: 3,
		MinVerifiedRatio:  0.80,
		IDVMatch:          0.50,
		MinEnrollFrames:   5,
	}
}

// MaxFrameGapLimit is the largest MaxFrameGapMs accepted: a day. A larger
// gap would disable the check without saying so.
const MaxFrameGapLimit = 24 * 60 * 60 * 1000

// Validate checks that every threshold is usable: similarities, scores and
// the ratio in [0,1] (NaN is not), a frame gap in [1, MaxFrameGapLimit] ms
// and frame counts in [1, MaxFrames]. The error wraps ErrThresholds and
// names the field with its JSON name, so an operator can fix the policy.
func (t Thresholds) Validate() error {
	for _, f := range [...]struct {
		name string
		v    float32
	}{
		{"faceMatch", t.FaceMatch},
		{"liveness", t.Liveness},
		{"quality", t.Quality},
		{"minVerifiedRatio", t.MinVerifiedRatio},
		{"idvMatch", t.IDVMatch},
	} {
		if !unit(f.v) {
			return fmt.Errorf("%w: %s must be between 0 and 1, got %v", ErrThresholds, f.name, f.v)
		}
	}
	if t.MaxFrameGapMs < 1 || t.MaxFrameGapMs > MaxFrameGapLimit {
		return fmt.Errorf("%w: maxFrameGapMs must be between 1 and %d, got %d", ErrThresholds, MaxFrameGapLimit, t.MaxFrameGapMs)
	}
	if t.MinVerifiedFrames < 1 || t.MinVerifiedFrames > MaxFrames {
		return fmt.Errorf("%w: minVerifiedFrames must be between 1 and %d, got %d", ErrThresholds, MaxFrames, t.MinVerifiedFrames)
	}
	if t.MinEnrollFrames < 1 || t.MinEnrollFrames > MaxFrames {
		return fmt.Errorf("%w: minEnrollFrames must be between 1 and %d, got %d", ErrThresholds, MaxFrames, t.MinEnrollFrames)
	}
	return nil
}
