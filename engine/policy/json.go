package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// The JSON mirror of Policy. encoding/json is fine here: policies are parsed
// when an operator changes one, never on the request path.
type policyJSON struct {
	Thresholds thresholdsJSON `json:"thresholds"`
	Weights    weightsJSON    `json:"weights"`
	Enrollment string         `json:"enrollment"`
	Verdict    string         `json:"verdict"`
	MinScore   *int           `json:"minScore"` // nil: absent, the default depends on verdict
}

type thresholdsJSON struct {
	FaceMatch         float32 `json:"faceMatch"`
	Liveness          float32 `json:"liveness"`
	Quality           float32 `json:"quality"`
	MaxFrameGapMs     int64   `json:"maxFrameGapMs"`
	MinVerifiedFrames int     `json:"minVerifiedFrames"`
	MinVerifiedRatio  float32 `json:"minVerifiedRatio"`
	IDVMatch          float32 `json:"idvMatch"`
	MinEnrollFrames   int     `json:"minEnrollFrames"`
}

type weightsJSON struct {
	ValuesCollected     int `json:"valuesCollected"`
	ValuesMatch         int `json:"valuesMatch"`
	BiometricsCollected int `json:"biometricsCollected"`
	BiometricsMatch     int `json:"biometricsMatch"`
	Liveness            int `json:"liveness"`
	NoViolations        int `json:"noViolations"`
	Enrolled            int `json:"enrolled"`
	IDVMatching         int `json:"idvMatching"`
	IDLiveLiveness      int `json:"idliveLiveness"`
	RegularLiveness     int `json:"regularLiveness"`
}

// The keys each object may have, exactly as spelled (encoding/json alone
// would also accept "FaceMatch" or "FACEMATCH").
var (
	topKeys       = []string{"thresholds", "weights", "enrollment", "verdict", "minScore"}
	thresholdKeys = []string{"faceMatch", "liveness", "quality", "maxFrameGapMs", "minVerifiedFrames",
		"minVerifiedRatio", "idvMatch", "minEnrollFrames"}
	weightKeys = weightNames[:]
)

func toJSON(p *Policy) policyJSON {
	t, w := &p.Thresholds, &p.Weights
	ms := p.MinScore
	return policyJSON{
		Thresholds: thresholdsJSON{
			FaceMatch: t.FaceMatch, Liveness: t.Liveness, Quality: t.Quality,
			MaxFrameGapMs: t.MaxFrameGapMs, MinVerifiedFrames: t.MinVerifiedFrames,
			MinVerifiedRatio: t.MinVerifiedRatio, IDVMatch: t.IDVMatch, MinEnrollFrames: t.MinEnrollFrames,
		},
		Weights: weightsJSON{
			ValuesCollected: w.ValuesCollected, ValuesMatch: w.ValuesMatch,
			BiometricsCollected: w.BiometricsCollected, BiometricsMatch: w.BiometricsMatch,
			Liveness: w.Liveness, NoViolations: w.NoViolations, Enrolled: w.Enrolled,
			IDVMatching: w.IDVMatching, IDLiveLiveness: w.IDLiveLiveness, RegularLiveness: w.RegularLiveness,
		},
		Enrollment: p.Enrollment.String(),
		Verdict:    p.Verdict.String(),
		MinScore:   &ms,
	}
}

// Parse reads a policy written by an operator. It is strict: the input is one
// JSON object; keys are exactly those of Policy's documentation (case
// included), each at most once; values have the key's type (no nulls, no
// 3.5 for a count); and the result must pass Validate. Missing keys keep
// their defaults, at any depth: {"weights":{...}} changes only the weights.
// The default minScore depends on the verdict: 8000 under "full", 0 under
// "values-only" (a values-only policy verifies on matching values and no
// violations unless the operator also sets minScore). Empty input (only
// white space) is the default policy: an organization created without one.
func Parse(js []byte) (Policy, error) {
	if len(bytes.TrimSpace(js)) == 0 {
		return Default(), nil
	}
	if err := checkKeys(js); err != nil {
		return Policy{}, err
	}
	d := Default()
	m := toJSON(&d)
	m.MinScore = nil
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Policy{}, fmt.Errorf("%w: %v", ErrJSON, err)
	}

	p := Policy{
		Thresholds: d.Thresholds,
		Weights: Weights{
			ValuesCollected: m.Weights.ValuesCollected, ValuesMatch: m.Weights.ValuesMatch,
			BiometricsCollected: m.Weights.BiometricsCollected, BiometricsMatch: m.Weights.BiometricsMatch,
			Liveness: m.Weights.Liveness, NoViolations: m.Weights.NoViolations, Enrolled: m.Weights.Enrolled,
			IDVMatching: m.Weights.IDVMatching, IDLiveLiveness: m.Weights.IDLiveLiveness,
			RegularLiveness: m.Weights.RegularLiveness,
		},
	}
	t := &p.Thresholds
	mt := &m.Thresholds
	t.FaceMatch, t.Liveness, t.Quality = mt.FaceMatch, mt.Liveness, mt.Quality
	t.MaxFrameGapMs, t.MinVerifiedFrames, t.MinVerifiedRatio = mt.MaxFrameGapMs, mt.MinVerifiedFrames, mt.MinVerifiedRatio
	t.IDVMatch, t.MinEnrollFrames = mt.IDVMatch, mt.MinEnrollFrames

	switch m.Enrollment {
	case "active":
		p.Enrollment = EnrollActive
	case "passive":
		p.Enrollment = EnrollPassive
	default:
		return Policy{}, fmt.Errorf("%w, got %q", ErrEnrollment, m.Enrollment)
	}
	switch m.Verdict {
	case "full":
		p.Verdict = VerdictFull
	case "values-only":
		p.Verdict = VerdictValuesOnly
	default:
		return Policy{}, fmt.Errorf("%w, got %q", ErrVerdict, m.Verdict)
	}
	switch {
	case m.MinScore != nil:
		p.MinScore = *m.MinScore
	case p.Verdict == VerdictValuesOnly:
		p.MinScore = 0
	default:
		p.MinScore = DefaultMinScore
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// JSON returns p as Parse reads it, every key present (minScore included, so
// a values-only policy keeps its score), in a fixed order: Parse(p.JSON())
// gives p back.
func (p Policy) JSON() []byte {
	b, err := json.Marshal(toJSON(&p))
	if err != nil { // cannot happen: the mirror holds only numbers and strings
		panic("policy: " + err.Error())
	}
	return b
}

// checkKeys walks the JSON with the tokenizer to enforce what encoding/json
// does not: exact key spelling, no duplicate keys, no null values, a single
// top-level object with nothing after it.
func checkKeys(js []byte) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("%w: a policy is a JSON object", ErrJSON)
	}
	if err := checkObject(dec, "", topKeys); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the policy object", ErrJSON)
	}
	return nil
}

// syntaxError wraps a tokenizer error, naming the end of input plainly.
func syntaxError(err error) error {
	if err == io.EOF {
		return fmt.Errorf("%w: unexpected end of input", ErrJSON)
	}
	return fmt.Errorf("%w: %v", ErrJSON, err)
}

// checkObject checks the keys of an object whose '{' was just read, up to
// and including its '}'.
func checkObject(dec *json.Decoder, path string, allowed []string) error {
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		key, _ := tok.(string) // the tokenizer only yields strings as keys
		name := path + key
		if !slices.Contains(allowed, key) {
			return fmt.Errorf("%w: %q", ErrUnknownKey, name)
		}
		if slices.Contains(seen, key) {
			return fmt.Errorf("%w: %q", ErrDuplicateKey, name)
		}
		seen = append(seen, key)

		tok, err = dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		switch tok {
		case nil:
			return fmt.Errorf("%w: %q must not be null", ErrJSON, name)
		case json.Delim('{'):
			var inner []string
			switch {
			case path == "" && key == "thresholds":
				inner = thresholdKeys
			case path == "" && key == "weights":
				inner = weightKeys
			default:
				return fmt.Errorf("%w: %q must not be an object", ErrJSON, name)
			}
			if err := checkObject(dec, name+".", inner); err != nil {
				return err
			}
		case json.Delim('['):
			return fmt.Errorf("%w: %q must not be an array", ErrJSON, name)
		}
	}
	tok, err := dec.Token() // the closing '}'
	if err != nil {
		return syntaxError(err)
	}
	if tok != json.Delim('}') {
		return fmt.Errorf("%w: unexpected %v", ErrJSON, tok)
	}
	return nil
}
