// Package policy turns an organization's policy (thresholds, weights,
// enrollment mode, verdict mode) and one validate's evidence (the value match
// result and the session's biometric aggregate) into DESIGN's indicators,
// ivScore and verifiedAction.
//
// A Policy is compiled once per organization when it changes (Compile) and
// evaluated per request (Compiled.Evaluate) without allocating.
package policy

import (
	"errors"
	"fmt"

	"github.com/countersign/countersign/engine/biometric"
)

// EnrollMode says which validate calls may enroll a user's face template.
type EnrollMode uint8

const (
	// EnrollActive (the default): only a validate with isEnrollment:true enrolls.
	EnrollActive EnrollMode = iota
	// EnrollPassive: also a user's first successful session, when the user
	// has no template yet.
	EnrollPassive
)

// String returns the policy JSON name of m ("active", "passive"), or "unknown".
func (m EnrollMode) String() string {
	switch m {
	case EnrollActive:
		return "active"
	case EnrollPassive:
		return "passive"
	}
	return "unknown"
}

// VerdictMode says what verifiedAction requires.
type VerdictMode uint8

const (
	// VerdictFull (the default): values match, biometrics match, iv_liveness,
	// no violations, and ivScore >= MinScore.
	VerdictFull VerdictMode = iota
	// VerdictValuesOnly: values match, no violations, and ivScore >= MinScore,
	// where MinScore defaults to 0 under this mode (see Parse). For
	// organizations that collect no biometrics.
	VerdictValuesOnly
)

// String returns the policy JSON name of m ("full", "values-only"), or "unknown".
func (m VerdictMode) String() string {
	switch m {
	case VerdictFull:
		return "full"
	case VerdictValuesOnly:
		return "values-only"
	}
	return "unknown"
}

// TotalWeight is what the weights must sum to: ivScore ranges over [0, TotalWeight].
const TotalWeight = 10000

// Weights are the points each indicator adds to ivScore when true. They are
// non-negative and sum to TotalWeight, so that a score means the same thing
// in every organization: the share of the evidence that holds.
type Weights struct {
	ValuesCollected, ValuesMatch, BiometricsCollected, BiometricsMatch, Liveness,
	NoViolations, Enrolled, IDVMatching, IDLiveLiveness, RegularLiveness int
}

// DefaultWeights returns DESIGN's weights. With them the documented example
// (values collected and matched, nothing else) scores 2000.
func DefaultWeights() Weights {
	return Weights{
		ValuesCollected:     1000,
		ValuesMatch:         1000,
		BiometricsCollected: 1000,
		BiometricsMatch:     2500,
		Liveness:            2000,
		NoViolations:        1000,
		Enrolled:            500,
		IDVMatching:         500,
		IDLiveLiveness:      250,
		RegularLiveness:     250,
	}
}

// weightNames are the policy JSON names of the weights, in list order.
var weightNames = [numWeights]string{
	"valuesCollected", "valuesMatch", "biometricsCollected", "biometricsMatch", "liveness",
	"noViolations", "enrolled", "idvMatching", "idliveLiveness", "regularLiveness",
}

const numWeights = 10

// list returns the weights in the order of weightNames.
func (w *Weights) list() [numWeights]int {
	return [numWeights]int{
		w.ValuesCollected, w.ValuesMatch, w.BiometricsCollected, w.BiometricsMatch, w.Liveness,
		w.NoViolations, w.Enrolled, w.IDVMatching, w.IDLiveLiveness, w.RegularLiveness,
	}
}

// Policy is an organization's policy as an operator writes it (JSON with these camelCase keys:
// thresholds{faceMatch,liveness,quality,maxFrameGapMs,minVerifiedFrames,minVerifiedRatio,idvMatch,minEnrollFrames},
// weights{valuesCollected,valuesMatch,biometricsCollected,biometricsMatch,liveness,noViolations,
// enrolled,idvMatching,idliveLiveness,regularLiveness}, enrollment "active"|"passive",
// verdict "full"|"values-only", minScore).
type Policy struct {
	Thresholds biometric.Thresholds
	Weights    Weights
	Enrollment EnrollMode
	Verdict    VerdictMode
	MinScore   int // 8000 by default (0 by default under VerdictValuesOnly, see Parse)
}

// DefaultMinScore is the ivScore a full verdict needs by default.
const DefaultMinScore = 8000

// Default returns DESIGN's policy: default thresholds and weights, active
// enrollment, full verdict, minScore 8000.
func Default() Policy {
	return Policy{
		Thresholds: biometric.DefaultThresholds(),
		Weights:    DefaultWeights(),
		Enrollment: EnrollActive,
		Verdict:    VerdictFull,
		MinScore:   DefaultMinScore,
	}
}

// Errors of Parse, Validate and Compile. Each is wrapped with the detail
// (the key, the value) an operator needs to fix the policy; a threshold error
// wraps biometric.ErrThresholds instead.
var (
	// ErrJSON: not a JSON object, malformed, a null, or a value of the wrong type.
	ErrJSON = errors.New("policy: invalid policy JSON")
	// ErrUnknownKey: a key that is not in the policy (spelling and case count).
	ErrUnknownKey = errors.New("policy: unknown key")
	// ErrDuplicateKey: a key given twice in one object.
	ErrDuplicateKey = errors.New("policy: duplicate key")
	// ErrEnrollment: an enrollment mode other than "active" or "passive".
	ErrEnrollment = errors.New(`policy: enrollment must be "active" or "passive"`)
	// ErrVerdict: a verdict mode other than "full" or "values-only".
	ErrVerdict = errors.New(`policy: verdict must be "full" or "values-only"`)
	// ErrWeights: a negative weight, or weights whose sum is not TotalWeight.
	ErrWeights = errors.New("policy: weights must be non-negative and sum to 10000")
	// ErrMinScore: a minScore outside [0, TotalWeight].
	ErrMinScore = errors.New("policy: minScore must be between 0 and 10000")
)

// Validate checks p: valid thresholds (biometric.Thresholds.Validate), known
// modes, weights that are non-negative and sum to TotalWeight, and a MinScore
// in [0, TotalWeight].
func (p Policy) Validate() error {
	if err := p.Thresholds.Validate(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if p.Enrollment > EnrollPassive {
		return fmt.Errorf("%w, got %d", ErrEnrollment, p.Enrollment)
	}
	if p.Verdict > VerdictValuesOnly {
		return fmt.Errorf("%w, got %d", ErrVerdict, p.Verdict)
	}
	sum := 0
	for i, w := range p.Weights.list() {
		// Each weight is at most the total, so the sum cannot overflow.
		if w < 0 || w > TotalWeight {
			return fmt.Errorf("%w: %s is %d", ErrWeights, weightNames[i], w)
		}
		sum += w
	}
	if sum != TotalWeight {
		return fmt.Errorf("%w: they sum to %d", ErrWeights, sum)
	}
	if p.MinScore < 0 || p.MinScore > TotalWeight {
		return fmt.Errorf("%w, got %d", ErrMinScore, p.MinScore)
	}
	return nil
}

// Compiled is a Policy prepared for evaluation; read-only, shared by all
// requests of an org (safe for concurrent use).
type Compiled struct {
	p Policy
	w [numWeights]int
}

// Compile validates p and prepares it for evaluation.
func Compile(p Policy) (*Compiled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Compiled{p: p, w: p.Weights.list()}, nil
}

// Policy returns the policy c was compiled from.
func (c *Compiled) Policy() Policy { return c.p }

// Thresholds returns the policy's thresholds, for the frame scorer.
func (c *Compiled) Thresholds() biometric.Thresholds { return c.p.Thresholds }

// WantsEnrollment says whether a validate should try to enroll: isEnrollment under active,
// or (passive) the user has no template yet, or isEnrollment.
func (c *Compiled) WantsEnrollment(isEnrollment, enrolled bool) bool {
	if c.p.Enrollment == EnrollPassive {
		return isEnrollment || !enrolled
	}
	return isEnrollment
}
