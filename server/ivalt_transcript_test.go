package server

import (
	"testing"

	"github.com/cockroachdb/datadriven"
)

// The iVALT surface's transcripts run on the admin transcripts' server (an
// operator registers the users, with their mobile numbers and e-mail
// addresses), with $cid as the client_id of generate-auth-token. Masked in
// every answer beside the admin ones: request_id, created_at, expires_at,
// verified_at, auth_token, face_auth_token, and the envelope's timestamp,
// instance and activityId.
const ivaltTranscriptDir = "../fixtures/http/ivalt"

// TestIvaltTranscripts runs the iVALT surface's HTTP transcripts, one fresh
// server and store per file. go test -run TestIvaltTranscripts -rewrite
// regenerates the answers (read them before committing).
func TestIvaltTranscripts(t *testing.T) {
	datadriven.Walk(t, ivaltTranscriptDir, func(t *testing.T, path string) {
		r := newAdminTranscriptRunner(t)
		r.Mask = append(r.Mask, "request_id", "created_at", "expires_at", "verified_at", "auth_token", "face_auth_token",
			"timestamp", "instance", "activityId")
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return r.Run(t, d) })
	})
}
