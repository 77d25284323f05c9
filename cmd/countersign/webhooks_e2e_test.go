package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
)

// TestServeWebhookSurvivesKill: an approval.created delivery that the
// outbox holds when the server is killed with SIGKILL (its first attempt
// was answered 500, so it waits for a retry) is delivered by the restarted
// server, with the same webhook-id and a signature that verifies.
func TestServeWebhookSurvivesKill(t *testing.T) {
	type call struct {
		id, ts, sig string
		body        []byte
		status      int
	}
	var (
		mu    sync.Mutex
		calls []call
		ok    atomic.Bool // answer 200 from now on
		got   = make(chan struct{}, 16)
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := 500
		if ok.Load() {
			status = 200
		}
		mu.Lock()
		calls = append(calls, call{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, status})
		mu.Unlock()
		w.WriteHeader(status)
		got <- struct{}{}
	}))
	defer rc.Close()
	waitCall := func(status int) call {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			mu.Lock()
			for _, c := range calls {
				if c.status == status {
					mu.Unlock()
					return c
				}
			}
			mu.Unlock()
			select {
			case <-got:
			case <-deadline:
				t.Fatalf("no delivery answered %d", status)
			}
		}
	}

	data, cred := newOrg(t)
	addr := freeAddr(t)
	p := serve(t, data, addr, "--webhook-backoff", "1s")
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})
	admin := client.Header{Name: "Authorization", Value: "Bearer " + cred.AdminKey}
	if r, err := c.Do("POST", "/admin/v1/users", []byte(`{"userID":"ann"}`), admin); err != nil || r.Status != 201 {
		t.Fatalf("create user: %v %d %s", err, r.Status, r.Body)
	}
	r, err := c.Do("POST", "/admin/v1/webhooks", []byte(`{"url":"`+rc.URL+`/hook","events":["approval.created"]}`), admin)
	if err != nil || r.Status != 201 {
		t.Fatalf("create webhook: %v %d %s", err, r.Status, r.Body)
	}
	var hook struct{ ID, Secret string }
	if err := json.Unmarshal(r.Body, &hook); err != nil {
		t.Fatal(err)
	}
	r, err = c.Do("POST", "/v1/approvals", []byte(`{"userID":"ann","message":"Pay?","method":"push"}`), client.Header{Name: "apikey", Value: cred.APIKey})
	if err != nil || r.Status != 201 {
		t.Fatalf("create approval: %v %d %s", err, r.Status, r.Body)
	}
	first := waitCall(500)
	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: the process exited cleanly?")
	}
	ok.Store(true)

	serve(t, data, addr, "--webhook-backoff", "1s")
	again := waitCall(200)
	if again.id != first.id || string(again.body) != string(first.body) || !strings.Contains(string(again.body), `"type":"approval.created"`) {
		t.Fatalf("after the restart got %s %s, want the event %s", again.id, again.body, first.id)
	}
	// Standard Webhooks: HMAC-SHA256 over id.timestamp.body with the key
	// after whsec_, as the specification has receivers check it.
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(hook.Secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(again.id + "." + again.ts + "." + string(again.body)))
	if again.sig != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("signature %q does not verify", again.sig)
	}

	// The secret is sealed: neither it nor its key is in any file of the
	// data directory (the log, the tables, the manifest).
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && (bytes.Contains(b, []byte(hook.Secret)) || bytes.Contains(b, []byte(strings.TrimPrefix(hook.Secret, "whsec_"))) ||
			bytes.Contains(b, key)) {
			t.Errorf("%s holds the webhook secret in the clear", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
