package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
)

// unloqClientVersion is the published UNLOQ Node.js client the surface is
// checked against. It is proprietary: the test installs it from the npm
// registry into a temporary directory, and none of it is kept here.
const unloqClientVersion = "unloq@0.9.4"

// TestUnloqNodeClient runs UNLOQ's own Node.js client against the binary,
// with its gateway set to /unloq, while a phone played by the client
// package decides: authenticate with events resolves after a pending
// event, and without events; the result token is exchanged once; a denial
// rejects DENIED with security_field, after which a request without the OTP
// rejects APPROVAL.TOKEN; a wait that runs out rejects TIMEOUT. The
// script's own receiver, subscribed in UNLOQ's format, hands each delivery
// to the client's verifySign, which accepts it and refuses it with one byte
// of the signature changed.
func TestUnloqNodeClient(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("npm is not installed; .ci/run installs Node.js")
		}
		t.Skip("npm is not installed")
	}
	mods := t.TempDir()
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", mods, unloqClientVersion)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", unloqClientVersion, err, out)
	}

	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t), "--webhook-backoff", "1s")
	c := p.client(client.Config{APIKey: cred.APIKey, Timeout: 30 * time.Second})
	admin := client.Header{Name: "Authorization", Value: "Bearer " + cred.AdminKey}
	hookAddr := freeAddr(t)
	r, err := c.Do("POST", "/admin/v1/webhooks", []byte(`{"url":"http://`+hookAddr+`/unloq/hook?org=demo","events":["approval.created"],"format":"unloq"}`), admin)
	if err != nil || r.Status != 201 {
		t.Fatalf("subscribe the script's receiver: %v %d %s", err, r.Status, r.Body)
	}
	var hook struct{ Secret string }
	if err := json.Unmarshal(r.Body, &hook); err != nil || hook.Secret == "" {
		t.Fatalf("webhook secret in %s: %v", r.Body, err)
	}
	phones := map[string]*testPhone{}
	for _, u := range []struct{ id, email, name string }{{"bob", "bob@example.com", "Bob Jones"}, {"carol", "carol@example.com", "Carol"}} {
		r, err := c.Do("POST", "/admin/v1/users", []byte(`{"userID":"`+u.id+`","email":"`+u.email+`","name":"`+u.name+`"}`), admin)
		if err != nil || r.Status != 201 {
			t.Fatalf("create %s: %v %d %s", u.id, err, r.Status, r.Body)
		}
		r, err = c.Do("POST", "/admin/v1/users/"+u.id+"/activation-codes", nil, admin)
		if err != nil || r.Status != 201 {
			t.Fatalf("activation code for %s: %v %d %s", u.id, err, r.Status, r.Body)
		}
		code := r.Body[strings.Index(string(r.Body), `"activationCode":"`)+len(`"activationCode":"`):]
		code = code[:strings.IndexByte(string(code), '"')]
		ph, err := activateTestPhone(c, string(code))
		if err != nil {
			t.Fatalf("activate %s's phone: %v", u.id, err)
		}
		phones[u.email] = ph
	}

	// bob's phone answers each approval as the script announced before
	// asking; carol's never answers.
	decisions := make(chan string, 16)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			list, err := phones["bob@example.com"].poll(2)
			if err != nil || len(list) == 0 {
				continue
			}
			select {
			case d := <-decisions:
				if _, err := phones["bob@example.com"].answer(&list[0], d, time.Now()); err != nil {
					t.Errorf("bob's phone answering %s: %v", d, err)
				}
			case <-ctx.Done():
			}
		}
	}()
	defer func() { stop(); wg.Wait() }()

	script, _ := filepath.Abs("testdata/unloq_client.js")
	node := exec.Command("node", script)
	node.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(mods, "node_modules"),
		"UNLOQ_KEY="+cred.APIKey, "UNLOQ_GATEWAY=http://"+p.addr+"/unloq",
		"UNLOQ_HOOK_ADDR="+hookAddr, "UNLOQ_HOOK_SECRET="+hook.Secret,
		"UNLOQ_TOTP_SECRET="+totpSecret(t, phones["bob@example.com"].dev.TOTPURI))
	node.Stderr = os.Stderr
	out, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	passed := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "phone" && f[1] == "bob@example.com":
			decisions <- f[2]
		case len(f) >= 3 && f[0] == "step" && f[2] == "ok":
			passed[f[1]] = true
		default:
			t.Errorf("node: %s", sc.Text())
		}
	}
	if err := node.Wait(); err != nil {
		t.Errorf("node script: %v", err)
	}
	for _, step := range []string{"events-approved", "token-data", "token-data-again", "plain-approved", "denied", "token-required", "otp-then-approved", "timeout", "webhook-signed", "webhook-altered"} {
		if !passed[step] {
			t.Errorf("step %s did not pass", step)
		}
	}
}

// testPhone plays the user's authenticator app on the device API with
// client's calls: a fresh Ed25519 key, the token of its activation, a
// passing face check on every answer.
type testPhone struct {
	c   *client.Client
	key ed25519.PrivateKey
	dev *client.Device
}

func activateTestPhone(c *client.Client, code string) (*testPhone, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	dev, err := c.ActivateDevice(code, &client.Activation{PublicKey: pub, Platform: "ios", AppVersion: "2.1.0", Model: "test phone"})
	if err != nil {
		return nil, err
	}
	return &testPhone{c: c, key: key, dev: dev}, nil
}

func (p *testPhone) poll(waitSeconds int) ([]client.PendingApproval, error) {
	return p.c.DeviceApprovals(p.dev.DeviceToken, waitSeconds)
}

// answer sends decision ("approve" or "deny") on a, signed at now, and
// returns the approval's status after it.
func (p *testPhone) answer(a *client.PendingApproval, decision string, now time.Time) (string, error) {
	ans := &client.DeviceAnswer{Decision: decision, Biometric: "PASS", BiometricMethod: "face",
		Platform: "ios", AppVersion: "2.1.0", Timestamp: now.UTC().Format(time.RFC3339)}
	ans.Sign(p.key, a)
	res, err := p.c.AnswerApproval(p.dev.DeviceToken, a.ApprovalID, ans)
	if err != nil {
		return "", err
	}
	return res.Status, nil
}

// totpSecret is the base32 secret of an otpauth:// URI.
func totpSecret(t *testing.T, uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Query().Get("secret") == "" {
		t.Fatalf("totpURI %q: %v", uri, err)
	}
	return u.Query().Get("secret")
}
