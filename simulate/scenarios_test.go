package simulate

import (
	"bytes"
	"strings"
	"testing"

	"github.com/countersign/countersign/client"
)

// The documented validate body (README, DESIGN), byte for byte.
const documentedValidate = `{"cid":"CID","csid":"CSID","userID":"USER","action":"transfer","additionalData":{"sessionData":[{"key":"amount","value":35,"synonyms":["total","sum"]},{"key":"payeeID","value":6,"synonyms":["payee"]},{"key":"accountNumber","value":"66666666","synonyms":["account"]},{"key":"notes","value":"Wire transfer","synonyms":["memo"]}]},"isEnrollment":false}`

// TestSeedIsTheDocumentedExample: the values every scenario validates are
// the documented example, so a run reads like the README.
func TestSeedIsTheDocumentedExample(t *testing.T) {
	r := client.ValidateRequest{CSID: "CSID", UserID: "USER", Action: "transfer", SessionData: SeedSessionData()}
	if got := string(r.AppendJSON(nil, "CID")); got != documentedValidate {
		t.Fatalf("validate body\n got %s\nwant %s", got, documentedValidate)
	}
}

func TestScenarioNames(t *testing.T) {
	want := "enroll genuine impostor replay photo multiple_faces user_mismatch tampered_amount values_only"
	if got := strings.Join(ScenarioNames(), " "); got != want {
		t.Fatalf("scenarios %s", got)
	}
	if s, ok := ScenarioByName("multiple-faces"); !ok || s.Name != "multiple_faces" {
		t.Fatal("ScenarioByName does not accept dashes")
	}
	for _, s := range Scenarios {
		if s.Expect == nil || s.About == "" {
			t.Errorf("%s: no expectation or description", s.Name)
		}
	}
}

// TestScenarioFrames checks each scenario's frames carry the evidence its
// expectation looks for, without a server.
func TestScenarioFrames(t *testing.T) {
	f := NewFaces(DefaultDim, 9)
	get := func(name string) []client.Frame {
		s, _ := ScenarioByName(name)
		return s.Frames(f, "alice", 1763800000000)
	}
	id := f.Identity(IdentitySeed("alice"))
	for _, fr := range get("genuine") {
		if c := Cosine(fr.Embedding, id); c < 0.85 || fr.Faces != 1 || fr.Liveness < 0.8 || fr.Quality < 0.5 {
			t.Errorf("genuine frame %d: cosine %.3f faces %d", fr.Seq, c, fr.Faces)
		}
	}
	for _, fr := range get("impostor") {
		if c := Cosine(fr.Embedding, id); c > 0.3 {
			t.Errorf("impostor frame %d cosine %.3f to the user", fr.Seq, c)
		}
	}
	rep := get("replay")
	if !bytes.Equal(client.AppendEmbedding(nil, rep[4].Embedding), client.AppendEmbedding(nil, rep[1].Embedding)) {
		t.Error("replay sends no identical frame")
	}
	photo := get("photo")
	run := 0
	for i := 1; i < len(photo); i++ {
		if Cosine(photo[i].Embedding, photo[i-1].Embedding) >= 0.9999 {
			run++
		}
	}
	if run < 5 {
		t.Errorf("photo: %d consecutive near-identical frames, want >= 5", run)
	}
	for _, fr := range get("multiple_faces") {
		if fr.Faces != 2 {
			t.Errorf("multiple_faces frame with %d faces", fr.Faces)
		}
	}
	prev := int64(0)
	for _, fr := range get("genuine") {
		if fr.TS-prev < 0 || (prev != 0 && fr.TS-prev >= 2000) {
			t.Errorf("frame gap %d ms", fr.TS-prev)
		}
		prev = fr.TS
	}
}

// TestExpectationsNameWhatIsMissing: a decision that is not what a scenario
// expects is refused with every missing piece of evidence named, and the
// decision it expects passes.
func TestExpectationsNameWhatIsMissing(t *testing.T) {
	photo, _ := ScenarioByName("photo")
	var lax client.Decision
	lax.VerifiedAction, lax.Indicators.Liveness = true, true
	err := photo.Expect(&lax)
	want := "expected violation static_stream, iv_spoof_detected, iv_liveness false, verifiedAction false"
	if err == nil || err.Error() != want {
		t.Fatalf("photo on a verified live decision: %v, want %q", err, want)
	}
	var refused client.Decision
	refused.Indicators.SpoofDetected = true
	refused.Indicators.PolicyViolations.Violations = []client.Violation{{Type: "static_stream", Count: 7, FirstSeq: 2}}
	if err := photo.Expect(&refused); err != nil {
		t.Fatalf("photo on the decision it expects: %v", err)
	}
	if replay, _ := ScenarioByName("replay"); replay.Expect(&refused) == nil {
		t.Fatal("replay accepts a static stream's decision")
	}
}
