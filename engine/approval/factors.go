package approval

import "github.com/countersign/countersign/engine/rules"

// Factor names one factor of a decided approval: the five of engine/rules
// under their own numbers, then the ones only an approval has.
type Factor uint8

const (
	// FactorNumberMatch: under number matching, whether the device sent the
	// number shown to the requester.
	FactorNumberMatch = Factor(rules.NumFactors) + iota
	// FactorOTP: a TOTP code decided the approval (DecideOTP).
	FactorOTP
	// FactorLink: an e-mailed link decided the approval (DecideLink).
	FactorLink
	numFactors
)

var ownFactorNames = [...]string{"number_match", "otp", "link"}

// String returns the factor's name as the APIs spell it ("geo_fence",
// "number_match"), or "unknown".
func (f Factor) String() string {
	switch {
	case f < Factor(rules.NumFactors):
		return rules.Factor(f).String()
	case f < numFactors:
		return ownFactorNames[f-Factor(rules.NumFactors)]
	}
	return "unknown"
}

// FactorOutcome is one factor as an approval records it and the surfaces
// render it: {"factor","result","reason"}.
type FactorOutcome struct {
	Factor  Factor
	Outcome rules.Outcome
	Reason  string
}

// The reasons of the approval's own factors, in the words of engine/rules'.
const (
	reasonNumberPass    = "the device sent the number shown to the requester"
	reasonNumberMissing = "number matching is required and the device sent no number"
	reasonNumberWrong   = "number matching is required and the device sent a number other than the one shown"
	reasonOTPPass       = "the user entered a current code of their TOTP authenticator"
	reasonLinkPass      = "the user opened the one-time link sent by e-mail"
)

// AppendFactorsJSON appends a's factors as the APIs render them, the shape
// of rules.Result.AppendJSON: [{"factor":"geo_fence","result":"FAIL","reason":"..."},...].
func (a *Approval) AppendFactorsJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for i := range a.Factors {
		if i > 0 {
			dst = append(dst, ',')
		}
		f := &a.Factors[i]
		dst = rules.AppendFactorJSON(dst, f.Factor.String(), f.Outcome, f.Reason)
	}
	return append(dst, ']')
}

// recordRules copies every factor of res into a, with the rules version.
func (a *Approval) recordRules(res *rules.Result) {
	a.RulesVersion = res.Version
	for i := range res.Factors {
		a.Factors = append(a.Factors, FactorOutcome{
			Factor: Factor(i), Outcome: res.Factors[i].Outcome, Reason: res.Factors[i].Reason,
		})
	}
}
