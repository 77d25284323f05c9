package native

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/server/jsonwire"
)

// Decision records.
//
// A validate answer is about 0.8 KB of JSON, almost all of it names that
// are the same in every answer. What the decision log stores is a compact
// record of what varies (the indicators, the per-item details, the
// violations, the per-type figures, the score), about a fifth of the size,
// and the JSON is rendered from it: by validate for its answer, and again,
// by the same function, for an idempotent replay and GET /v1/decisions. The
// replay is therefore byte for byte the answer, and every decision costs
// the WAL, the memtable, flushes and compactions a fifth of the bytes
// (PERF.md, "Decision records").
//
// Layout, in the order the JSON needs it (varints are encoding/binary's):
//
//	0x01                          version
//	uint16 little-endian          indicator flags (recFlag*)
//	uvarint n, n x detail:        uvarint len, key; byte matched|hasField<<1;
//	                              [uvarint len, field]; byte reason
//	uvarint n, n x violation:     byte kind; uvarint count; uvarint firstSeq
//	uvarint totalFrames, uvarint verifiedFrames
//	uvarint n, n x type info:     byte type; uvarint frames; uvarint verified;
//	                              uint32 LE float32 bits of meanSimilarity,
//	                              then of meanLiveness; varint firstTs; varint lastTs
//	varint ivScore
//
// A stored answer that begins with '{' is a verbatim JSON answer, as
// decision logs written before records existed hold; it is answered as is.
const decisionRecV1 = 0x01

// Indicator flags of a decision record.
const (
	recVerified = 1 << iota
	recValuesCollected
	recValuesMatch
	recBiometricsCollected
	recBiometricsMatch
	recLiveness
	recHasViolations
	recUserEnrolled
	recSpoofDetected
	recIDVMatching
	recDriverLicenseCollected
	recIDLiveLiveness
	recRegularLiveness
)

// errDecisionRecord: a stored decision that does not decode (damage).
var errDecisionRecord = errors.New("stored decision record does not decode")

// appendDecisionRecord appends the record of the verdict v and the value
// details to dst.
func appendDecisionRecord(dst []byte, v *policy.Verdict, details []match.Detail) []byte {
	var f uint16
	for _, b := range [...]struct {
		on   bool
		flag uint16
	}{
		{v.VerifiedAction, recVerified}, {v.ValuesCollected, recValuesCollected},
		{v.ValuesMatch, recValuesMatch}, {v.BiometricsCollected, recBiometricsCollected},
		{v.BiometricsMatch, recBiometricsMatch}, {v.Liveness, recLiveness},
		{v.HasViolations, recHasViolations}, {v.UserEnrolled, recUserEnrolled},
		{v.SpoofDetected, recSpoofDetected}, {v.IDVMatching, recIDVMatching},
		{v.DriverLicenseCollected, recDriverLicenseCollected},
		{v.IDLiveLiveness, recIDLiveLiveness}, {v.RegularLiveness, recRegularLiveness},
	} {
		if b.on {
			f |= b.flag
		}
	}
	dst = append(dst, decisionRecV1)
	dst = binary.LittleEndian.AppendUint16(dst, f)
	dst = binary.AppendUvarint(dst, uint64(len(details)))
	for i := range details {
		d := &details[i]
		dst = binary.AppendUvarint(dst, uint64(len(d.Key)))
		dst = append(dst, d.Key...)
		var m byte
		if d.Matched {
			m |= 1
		}
		if d.Field != nil {
			m |= 2
		}
		dst = append(dst, m)
		if d.Field != nil {
			dst = binary.AppendUvarint(dst, uint64(len(d.Field)))
			dst = append(dst, d.Field...)
		}
		dst = append(dst, byte(d.Reason))
	}
	dst = binary.AppendUvarint(dst, uint64(len(v.Violations)))
	for i := range v.Violations {
		vc := &v.Violations[i]
		dst = append(dst, byte(vc.Kind))
		dst = binary.AppendUvarint(dst, uint64(vc.Count))
		dst = binary.AppendUvarint(dst, vc.FirstSeq)
	}
	dst = binary.AppendUvarint(dst, uint64(v.TotalFrames))
	dst = binary.AppendUvarint(dst, uint64(v.VerifiedFrames))
	dst = binary.AppendUvarint(dst, uint64(len(v.Info)))
	for i := range v.Info {
		ti := &v.Info[i]
		dst = append(dst, byte(ti.Type))
		dst = binary.AppendUvarint(dst, uint64(ti.Frames))
		dst = binary.AppendUvarint(dst, uint64(ti.Verified))
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(ti.MeanSimilarity))
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(ti.MeanLiveness))
		dst = binary.AppendVarint(dst, ti.FirstTS)
		dst = binary.AppendVarint(dst, ti.LastTS)
	}
	return binary.AppendVarint(dst, int64(v.Score))
}

// recReader reads a decision record; the first failure sticks in bad.
type recReader struct {
	b   []byte
	bad bool
}

func (r *recReader) byte1() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *recReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// u32 reads a uvarint that must fit 32 bits (counts).
func (r *recReader) u32() uint64 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.bad = true
	}
	return v
}

func (r *recReader) fixed32() uint32 {
	if len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *recReader) bytes() []byte {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads a list length; each element takes at least min bytes, so a
// damaged length cannot make the caller loop far past the record's end.
func (r *recReader) count(min int) int {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)/min) {
		r.bad = true
		return 0
	}
	return int(n)
}

// AppendValidateAnswer renders the JSON answer of decision decisionID from
// its stored record rec (or copies a verbatim JSON answer) onto dst, exactly
// in DESIGN's shape. On a record that does not decode it returns dst
// unchanged and errDecisionRecord.
func AppendValidateAnswer(dst, rec []byte, decisionID string) ([]byte, error) {
	if len(rec) > 0 && rec[0] == '{' {
		return append(dst, rec...), nil
	}
	start := len(dst)
	r := recReader{b: rec}
	if r.byte1() != decisionRecV1 || len(r.b) < 2 {
		return dst, errDecisionRecord
	}
	f := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	flag := func(dst []byte, bit uint16) []byte { return jsonwire.AppendBool(dst, f&bit != 0) }

	dst = append(dst, `{"success":true,"verifiedAction":`...)
	dst = flag(dst, recVerified)
	dst = append(dst, `,"decisionID":`...)
	dst = jsonwire.AppendString(dst, decisionID)
	dst = append(dst, `,"indicators":{"iv_is_values_collected":`...)
	dst = flag(dst, recValuesCollected)
	dst = append(dst, `,"iv_is_values_match":`...)
	dst = flag(dst, recValuesMatch)
	dst = append(dst, `,"iv_values_match_details":{`...)
	for i, n := 0, r.count(3); i < n && !r.bad; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonwire.AppendBytes(dst, r.bytes())
		m := r.byte1()
		dst = append(dst, `:{"matched":`...)
		dst = jsonwire.AppendBool(dst, m&1 != 0)
		dst = append(dst, `,"field":`...)
		if m&2 != 0 {
			dst = jsonwire.AppendBytes(dst, r.bytes())
		} else {
			dst = append(dst, "null"...)
		}
		reason := match.Reason(r.byte1())
		if reason > match.Mismatch || m > 3 {
			r.bad = true
		}
		dst = append(dst, `,"reason":"`...)
		dst = append(dst, reason.String()...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `},"iv_is_biometrics_collected":`...)
	dst = flag(dst, recBiometricsCollected)
	dst = append(dst, `,"iv_is_biometrics_match":`...)
	dst = flag(dst, recBiometricsMatch)
	dst = append(dst, `,"iv_liveness":`...)
	dst = flag(dst, recLiveness)
	dst = append(dst, `,"iv_policy_violations":{"violations":[`...)
	for i, n := 0, r.count(3); i < n && !r.bad; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		kind := biometric.Kind(r.byte1())
		if kind >= biometric.NumReportedKinds {
			r.bad = true
		}
		dst = append(dst, `{"type":"`...)
		dst = append(dst, kind.String()...)
		dst = append(dst, `","count":`...)
		dst = strconv.AppendUint(dst, r.u32(), 10)
		dst = append(dst, `,"firstSeq":`...)
		dst = strconv.AppendUint(dst, r.uvarint(), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"has_violations":`...)
	dst = flag(dst, recHasViolations)
	dst = append(dst, `,"total_frames":`...)
	dst = strconv.AppendUint(dst, r.u32(), 10)
	dst = append(dst, `,"verified_frames":`...)
	dst = strconv.AppendUint(dst, r.u32(), 10)
	dst = append(dst, `},"iv_biometrics_info":[`...)
	for i, n := 0, r.count(13); i < n && !r.bad; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		typ := biometric.FrameType(r.byte1())
		if typ != biometric.FaceFrame && typ != biometric.DocumentFrame {
			r.bad = true
		}
		dst = append(dst, `{"type":"`...)
		dst = append(dst, typ.String()...)
		dst = append(dst, `","frames":`...)
		dst = strconv.AppendUint(dst, r.u32(), 10)
		dst = append(dst, `,"verified":`...)
		dst = strconv.AppendUint(dst, r.u32(), 10)
		dst = append(dst, `,"meanSimilarity":`...)
		dst = jsonwire.AppendFloat(dst, float64(math.Float32frombits(r.fixed32())), 32)
		dst = append(dst, `,"meanLiveness":`...)
		dst = jsonwire.AppendFloat(dst, float64(math.Float32frombits(r.fixed32())), 32)
		dst = append(dst, `,"firstTs":`...)
		dst = strconv.AppendInt(dst, r.varint(), 10)
		dst = append(dst, `,"lastTs":`...)
		dst = strconv.AppendInt(dst, r.varint(), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"iv_user_enrolled":`...)
	dst = flag(dst, recUserEnrolled)
	dst = append(dst, `,"iv_spoof_detected":`...)
	dst = flag(dst, recSpoofDetected)
	dst = append(dst, `,"idv_matching":`...)
	dst = flag(dst, recIDVMatching)
	dst = append(dst, `,"driverLicenseCollected":`...)
	dst = flag(dst, recDriverLicenseCollected)
	dst = append(dst, `,"idlive_liveness":`...)
	dst = flag(dst, recIDLiveLiveness)
	dst = append(dst, `,"regular_liveness":`...)
	dst = flag(dst, recRegularLiveness)
	dst = append(dst, `},"ivScore":`...)
	dst = strconv.AppendInt(dst, r.varint(), 10)
	dst = append(dst, '}')
	if r.bad || len(r.b) != 0 || f>>13 != 0 {
		return dst[:start], errDecisionRecord
	}
	return dst, nil
}
