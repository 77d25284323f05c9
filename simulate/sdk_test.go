package simulate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
)

// TestWriteTable: one row per outcome, a failed request shown with dashes
// and its error, a decision with its verdict, score, violations and polls.
func TestWriteTable(t *testing.T) {
	d := &client.Decision{VerifiedAction: false, IVScore: 1200, Polls: 2}
	d.Indicators.PolicyViolations.Violations = []client.Violation{{Type: "face_mismatch"}, {Type: "multiple_faces"}}
	outs := []Outcome{
		{Scenario: "genuine", User: "u1", Decision: &client.Decision{VerifiedAction: true, IVScore: 9400}, Elapsed: 12 * time.Millisecond},
		{Scenario: "impostor", User: "u1", Decision: d, Err: errors.New("expected violation face_mismatch")},
		{Scenario: "photo", User: "u2", Err: errors.New("HTTP 503")},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, outs); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"SCENARIO", "USER", "VERIFIED", "IVSCORE", "VIOLATIONS", "POLLS", "MS", "RESULT"},
		{"genuine", "u1", "true", "9400", "none", "0", "12", "ok"},
		{"impostor", "u1", "false", "1200", "face_mismatch,multiple_faces", "2", "0", "FAIL:", "expected", "violation", "face_mismatch"},
		{"photo", "u2", "-", "-", "-", "-", "0", "FAIL:", "HTTP", "503"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), b.String())
	}
	for i, r := range rows {
		if got := strings.Fields(r); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("row %d: %q, want %q", i, got, want[i])
		}
	}
}
