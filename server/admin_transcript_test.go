package server

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/countersign/countersign/internal/httptranscript"
	"github.com/countersign/countersign/store"
)

// The admin surface's transcripts run on the native ones' server
// (newTranscriptRunner: its commands and variables), with, beside them:
//
//	$adminKey, $otherAdminKey   admin keys of the file's organization and of the second one
//	activate code=C [platform=P]
//	                            activate a device with the activation code C, as the
//	                            authenticator app will (the device surface is not served
//	                            yet); $deviceID is the device's id
//
// Masked in every answer beside the native ones: activationCode.
const adminTranscriptDir = "../fixtures/http/admin"

func newAdminTranscriptRunner(t *testing.T) *httptranscript.Runner {
	// The master key's Sealer, for the webhooks' secrets.
	sealer, err := store.NewSealer(make([]byte, store.MasterKeySize), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, e := newTranscriptRunner(t, withConfig(func(c *Config) { c.Sealer = sealer }))
	otherKey, _ := r.Var("otherKey")
	other, err := e.db.OrgByAPIKey([]byte(otherKey))
	if err != nil {
		t.Fatal(err)
	}
	for name, org := range map[string]store.OrgID{"adminKey": e.org.ID, "otherAdminKey": other.ID} {
		key, err := e.db.AddAPIKey(org, store.ScopeAdmin)
		if err != nil {
			t.Fatal(err)
		}
		r.Set(name, key, false)
	}
	r.Mask = append(r.Mask, "activationCode")
	seed := uint64(0)
	r.Commands["activate"] = func(t testing.TB, d *datadriven.TestData) string {
		var code string
		platform := "ios"
		d.ScanArgs(t, "code", &code)
		if d.HasArg("platform") {
			d.ScanArgs(t, "platform", &platform)
		}
		if name, ok := strings.CutPrefix(code, "$"); ok {
			code, _ = r.Var(name)
		}
		seed++
		pub, _, _ := ed25519.GenerateKey(newRandReader(seed))
		dev, _, err := e.db.ActivateDevice([]byte(code), &store.DeviceActivation{PublicKey: pub, Platform: platform, AppVersion: "2.1.0", Model: "test"})
		if err != nil {
			return "error: " + err.Error()
		}
		r.Set("deviceID", dev.ID, false)
		return "device $deviceID of " + dev.UserID
	}
	return r
}

// TestAdminTranscripts runs the admin surface's HTTP transcripts, one fresh
// server and store per file. go test -run TestAdminTranscripts -rewrite
// regenerates the answers (read them before committing).
func TestAdminTranscripts(t *testing.T) {
	datadriven.Walk(t, adminTranscriptDir, func(t *testing.T, path string) {
		r := newAdminTranscriptRunner(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return r.Run(t, d) })
	})
}
