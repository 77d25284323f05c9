package server

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/store"
)

// TestUnloqShutdownWakesHeld: 1000 authenticate requests held at once,
// half streaming their events, half waiting for one answer; at shutdown
// each answers at once (the stream with an error event, the others 503 in
// UNLOQ's envelope) and the server stops well within its timeout.
func TestUnloqShutdownWakesHeld(t *testing.T) {
	const held, perUser = 1000, 3 // at most 3 pending approvals per user
	e := newEnv(t, withConfig(func(c *Config) { c.MaxConnsPerIP, c.MaxWaitingPerIP = 2*held, -1 }))
	base := "http://" + e.serveTCP()
	users := (held + perUser - 1) / perUser
	for i := range users {
		id := fmt.Sprintf("u%d", i)
		if _, err := e.db.CreateUser(e.org.ID, store.User{UserID: id, Email: id + "@example.com"}); err != nil {
			t.Fatal(err)
		}
		code, _, err := e.db.CreateActivationCode(e.org.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, _, err := e.db.ActivateDevice([]byte(code), &store.DeviceActivation{PublicKey: pub, Platform: "ios", AppVersion: "2.1.0"}); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: held, MaxConnsPerHost: 0}}
	type answer struct {
		events bool
		status int
		body   string
		at     time.Time
	}
	answers := make(chan answer, held)
	var sent sync.WaitGroup
	for i := range held {
		sent.Add(1)
		events := i%2 == 0
		go func() {
			defer sent.Done()
			path := "/unloq/v1/authenticate"
			if events {
				path += "?events=true"
			}
			q, _ := http.NewRequest("POST", base+path, strings.NewReader(fmt.Sprintf(`{"email":"u%d@example.com"}`, i/perUser)))
			q.Header.Set("Authorization", "Bearer "+e.apiKey)
			q.Header.Set("Content-Type", "application/json")
			res, err := hc.Do(q)
			if err != nil {
				answers <- answer{events: events, body: err.Error(), at: time.Now()}
				return
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			if events {
				// The pending event comes at once; the rest at shutdown.
				if _, err := br.ReadString('}'); err != nil {
					answers <- answer{events: events, body: "no pending event: " + err.Error(), at: time.Now()}
					return
				}
			}
			b, _ := io.ReadAll(br)
			answers <- answer{events: events, status: res.StatusCode, body: string(b), at: time.Now()}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for e.srv.core.Hub().Held() < held {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests held", e.srv.core.Hub().Held(), held)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	e.stop()
	stopped := time.Since(start)
	sent.Wait()
	close(answers)
	var slowest time.Duration
	for a := range answers {
		slowest = max(slowest, a.at.Sub(start))
		switch {
		case a.events && a.status == 200 && strings.Contains(a.body, `{"event":"error","data":{"code":"SERVER.UNAVAILABLE"`):
		case !a.events && a.status == 503 && strings.Contains(a.body, `"code":"SERVER.UNAVAILABLE"`):
		default:
			t.Fatalf("held request (events %v) answered %d %q at shutdown", a.events, a.status, a.body)
		}
	}
	t.Logf("%d held: shutdown took %v, the slowest answer came %v after it began", held, stopped, slowest)
	if stopped > 5*time.Second {
		t.Errorf("shutdown took %v with %d held", stopped, held)
	}
}
