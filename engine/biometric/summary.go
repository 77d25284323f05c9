package biometric

import (
	"strconv"
	"strings"
)

// String returns a readable multi-line summary of a, for logs, debugging and
// the fixtures. It is not an interchange format: use AppendBinary.
func (a *Aggregate) String() string {
	var b strings.Builder
	b.WriteString("frames=")
	b.WriteString(strconv.FormatUint(uint64(a.Frames()), 10))
	b.WriteString(" template=")
	switch v := a.templateVersion; v {
	case 0:
		b.WriteString("none")
	case MixedTemplates:
		b.WriteString("mixed")
	default:
		b.WriteString(strconv.FormatUint(v, 10))
	}
	b.WriteByte('\n')

	writeStats(&b, "face", &a.Face)
	if a.Face.Frames > 0 {
		b.WriteString("  present=")
		b.WriteString(strconv.FormatUint(uint64(a.FacePresent), 10))
		b.WriteString(" one-face=")
		b.WriteString(strconv.FormatUint(uint64(a.OneFace), 10))
		b.WriteString(" live-one-face=")
		b.WriteString(strconv.FormatUint(uint64(a.LiveOneFace), 10))
		b.WriteString(" one-face-liveness=")
		b.WriteString(mean(a.OneFaceLivenessSum, a.OneFace))
		b.WriteByte('\n')
	}
	writeStats(&b, "document", &a.Document)
	if a.Document.Frames > 0 {
		b.WriteString("  driver-license=")
		b.WriteString(strconv.FormatBool(a.DriverLicense))
		b.WriteString(" live=")
		b.WriteString(strconv.FormatBool(a.DocumentLive))
		b.WriteString(" best-quality=")
		if len(a.DocumentBest) == 0 {
			b.WriteString("none")
		} else {
			b.WriteString(strconv.FormatFloat(float64(a.DocumentBestQuality), 'g', -1, 32))
			if a.Face.Verified > 0 {
				// What idv_matching compares with idvMatch.
				b.WriteString(" idv-similarity=")
				b.WriteString(strconv.FormatFloat(float64(Cosine(a.DocumentBest, a.VerifiedSum)), 'f', 4, 32))
			}
		}
		b.WriteByte('\n')
	}

	b.WriteString("violations:")
	none := true
	for k := range a.Violations {
		v := &a.Violations[k]
		if v.Count == 0 {
			continue
		}
		none = false
		b.WriteByte(' ')
		b.WriteString(Kind(k).String())
		b.WriteString("(count=")
		b.WriteString(strconv.FormatUint(uint64(v.Count), 10))
		b.WriteString(" first=")
		b.WriteString(strconv.FormatUint(v.FirstSeq, 10))
		b.WriteByte(')')
	}
	if none {
		b.WriteString(" none")
	}
	b.WriteString("\nreplay-memory=")
	b.WriteString(strconv.Itoa(len(a.hashes)))
	b.WriteString(" static-run=")
	b.WriteString(strconv.FormatUint(uint64(a.run), 10))
	b.WriteByte('\n')
	return b.String()
}

func writeStats(b *strings.Builder, name string, s *TypeStats) {
	b.WriteString(name)
	b.WriteString(": ")
	if s.Frames == 0 {
		b.WriteString("none\n")
		return
	}
	b.WriteString("frames=")
	b.WriteString(strconv.FormatUint(uint64(s.Frames), 10))
	b.WriteString(" verified=")
	b.WriteString(strconv.FormatUint(uint64(s.Verified), 10))
	b.WriteString(" compared=")
	b.WriteString(strconv.FormatUint(uint64(s.Compared), 10))
	b.WriteString(" similarity=")
	b.WriteString(mean(s.SimilaritySum, s.Compared))
	b.WriteString(" liveness=")
	b.WriteString(mean(s.LivenessSum, s.Frames))
	b.WriteString(" ts=")
	b.WriteString(strconv.FormatInt(s.FirstTS, 10))
	b.WriteString("..")
	b.WriteString(strconv.FormatInt(s.LastTS, 10))
	b.WriteByte('\n')
}

// mean formats sum/n with four decimals, "-" when n is 0.
func mean(sum float64, n uint32) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(sum/float64(n), 'f', 4, 64)
}
