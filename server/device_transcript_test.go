package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/countersign/countersign/internal/httptranscript"
)

// The device surface's transcripts run on the admin transcripts' server
// (an operator makes the users and the activation codes), with:
//
//	$publicKey      an Ed25519 public key in base64url, the app's
//	$smallOrderKey  the identity point's encoding, under which anyone can sign
//
// Masked in every answer beside the admin ones: deviceID, deviceToken,
// totpURI (its secret is the user's new random seed).
const deviceTranscriptDir = "../fixtures/http/device"

func newDeviceTranscriptRunner(t *testing.T) *httptranscript.Runner {
	r := newAdminTranscriptRunner(t)
	pub, _, _ := ed25519.GenerateKey(newRandReader(42))
	r.Set("publicKey", base64.RawURLEncoding.EncodeToString(pub), false)
	identity := [32]byte{1}
	r.Set("smallOrderKey", base64.RawURLEncoding.EncodeToString(identity[:]), false)
	r.Mask = append(r.Mask, "deviceID", "deviceToken", "totpURI")
	return r
}

// TestDeviceTranscripts runs the device surface's HTTP transcripts, one
// fresh server and store per file. go test -run TestDeviceTranscripts
// -rewrite regenerates the answers (read them before committing).
func TestDeviceTranscripts(t *testing.T) {
	datadriven.Walk(t, deviceTranscriptDir, func(t *testing.T, path string) {
		r := newDeviceTranscriptRunner(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return r.Run(t, d) })
	})
}
