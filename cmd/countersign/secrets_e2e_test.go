package main

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// secretForms are the ways a secret could sit in a file: as given, without
// its prefix, and its decoded bytes raw, in hex, base64 (standard and URL,
// padded or not) and base32 (either case, padded or not).
func secretForms(secret string) [][]byte {
	forms := [][]byte{[]byte(secret)}
	payload := secret
	if i := strings.IndexByte(secret, '_'); i > 0 && i < 8 {
		payload = secret[i+1:]
		forms = append(forms, []byte(payload))
	}
	var raws [][]byte
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(payload); err == nil {
			raws = append(raws, b)
		}
	}
	for _, enc := range []*base32.Encoding{base32.StdEncoding, base32.StdEncoding.WithPadding(base32.NoPadding)} {
		if b, err := enc.DecodeString(strings.ToUpper(payload)); err == nil {
			raws = append(raws, b)
		}
	}
	for _, raw := range raws {
		if len(raw) < 10 {
			continue // too short to mean anything found
		}
		forms = append(forms, raw, []byte(hex.EncodeToString(raw)))
		for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
			forms = append(forms, []byte(enc.EncodeToString(raw)))
		}
		b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
		forms = append(forms, []byte(b32), []byte(strings.ToLower(b32)))
	}
	return forms
}

// TestServeKeepsNoSecretInClear: after init, a device activation and a
// webhook subscription (where the server serves webhooks), no API key,
// admin key, activation code, device token, TOTP seed or webhook secret is
// in any file of the data directory, in any of secretForms, neither after
// the server stops nor after the store is compacted into its last level
// (which rewrites every table, so nothing hides in a log the test reads
// before Pebble drops it).
func TestServeKeepsNoSecretInClear(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey, AdminKey: cred.AdminKey})
	secrets := map[string]string{"the API key": cred.APIKey, "the admin key": cred.AdminKey}

	if _, err := c.CreateUser(&client.NewUser{UserID: "carol", Mobile: "+31612345678"}); err != nil {
		t.Fatal(err)
	}
	code, err := c.CreateActivationCode("carol")
	if err != nil {
		t.Fatal(err)
	}
	secrets["the activation code"] = code.ActivationCode
	e, err := simulate.Enroll(c, "dave")
	if err != nil {
		t.Fatal(err)
	}
	secrets["the device token"] = e.Device.DeviceToken
	if e.Device.TOTPURI != "" {
		u, err := url.Parse(e.Device.TOTPURI)
		if err != nil || u.Query().Get("secret") == "" {
			t.Fatalf("totpURI %q: %v", e.Device.TOTPURI, err)
		}
		secrets["the TOTP seed"] = u.Query().Get("secret")
	} else {
		t.Fatal("the activation answered no totpURI: the TOTP seed the data directory must not show is unknown")
	}
	// An approval answered, so the device's records are written again.
	created, err := c.CreateApproval(&client.ApprovalRequest{UserID: "dave", Message: "ok?"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.DeviceApprovals(e.Device.DeviceToken, 5)
	if err != nil || len(list) != 1 || list[0].ApprovalID != created.ApprovalID {
		t.Fatalf("device poll: %v %+v", err, list)
	}
	if _, err := c.AnswerApproval(e.Device.DeviceToken, created.ApprovalID, simulate.NewAnswer(e.Key, &list[0], time.Now())); err != nil {
		t.Fatal(err)
	}
	r, err := c.Do("POST", "/admin/v1/webhooks", []byte(`{"url":"http://127.0.0.1:9/hook","events":["approval.created"],"format":"standard"}`),
		client.Header{Name: "Authorization", Value: "Bearer " + cred.AdminKey})
	switch {
	case err != nil:
		t.Fatal(err)
	case r.Status == 201:
		var secret string
		if i := bytes.Index(r.Body, []byte(`"secret":"`)); i >= 0 {
			rest := r.Body[i+len(`"secret":"`):]
			secret = string(rest[:bytes.IndexByte(rest, '"')])
		}
		if secret == "" {
			t.Fatalf("a webhook subscription without a secret: %s", r.Body)
		}
		secrets["the webhook secret"] = secret
	default:
		t.Fatalf("POST /admin/v1/webhooks: %d %s", r.Status, r.Body)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("serve on SIGTERM: %v", err)
	}
	scanForSecrets(t, data, secrets, "after the server stopped")

	// The store's files after a full compaction. The test opens the Pebble
	// directory itself, with Pebble's defaults (the store keeps them for
	// the comparer), since serving offers no way to force one.
	db, err := pebble.Open(data, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatalf("open the store for a compaction: %v", err)
	}
	if err := db.Compact(t.Context(), []byte{0}, bytes.Repeat([]byte{0xff}, 64), true); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	scanForSecrets(t, data, secrets, "after a compaction")
}

// scanForSecrets fails the test for every file under dir that holds a form
// of a secret.
func scanForSecrets(t *testing.T, dir string, secrets map[string]string, when string) {
	t.Helper()
	files, found, err := findSecrets(dir, secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: %s", when, f)
	}
	if files < 3 {
		t.Fatalf("%s: only %d files in %s", when, files, dir)
	}
	t.Logf("%s: %d files searched for %d secrets, each in up to %d forms", when, files, len(secrets), len(secretForms(secrets["the API key"])))
}

// findSecrets reads every file under dir and says which holds which form
// of which secret.
func findSecrets(dir string, secrets map[string]string) (files int, found []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for what, s := range secrets {
			for _, form := range secretForms(s) {
				if bytes.Contains(b, form) {
					found = append(found, fmt.Sprintf("%s holds %s (as %q)", filepath.Base(path), what, form))
				}
			}
		}
		return nil
	})
	return files, found, err
}

// TestFindSecrets: the search finds a secret in each form it looks for, so
// the data directory's clean bill means something.
func TestFindSecrets(t *testing.T) {
	token := "csd_" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa7}, 32))
	raw := bytes.Repeat([]byte{0xa7}, 32)
	for _, planted := range [][]byte{
		[]byte(token), raw, []byte(hex.EncodeToString(raw)), []byte(base64.StdEncoding.EncodeToString(raw)),
		[]byte(strings.ToLower(base32.StdEncoding.EncodeToString(raw))),
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "000001.sst"), append(append([]byte("head"), planted...), "tail"...), 0o600)
		if _, found, err := findSecrets(dir, map[string]string{"a token": token}); err != nil || len(found) == 0 {
			t.Errorf("%q planted, not found (%v)", planted, err)
		}
	}
}
