package webhook

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/store"
)

// TestSignStandardVector: the Standard Webhooks specification's published
// example (secret, id, timestamp, body and the signature it gives).
func TestSignStandardVector(t *testing.T) {
	key, err := signingKey(store.FormatStandard, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	if err != nil {
		t.Fatal(err)
	}
	got := SignStandard(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!"} {
		if _, err := signingKey(store.FormatStandard, []byte(bad)); err != ErrSecret {
			t.Errorf("secret %q: %v, want ErrSecret", bad, err)
		}
	}
	s := NewSecret(store.FormatStandard)
	if k, err := signingKey(store.FormatStandard, []byte(s)); err != nil || len(k) != secretBytes {
		t.Fatalf("NewSecret %q: key of %d bytes, %v", s, len(k), err)
	}
	if s := NewSecret(store.FormatUnloq); strings.HasPrefix(s, "whsec_") || len(s) != 43 {
		t.Fatalf("unloq secret %q", s)
	}
}

// TestSignUnloq: the path and query, then each key and value in sorted
// key order; a change of any of them changes the signature.
func TestSignUnloq(t *testing.T) {
	u, _ := url.Parse("https://hooks.example.com/unloq/hook?x=1")
	form := url.Values{"b": {"2"}, "a": {"1"}}
	sig := SignUnloq([]byte("k"), u, form)
	// HMAC-SHA256("k", "/unloq/hook?x=1a1b2"), base64.
	// (computed apart, with Python's hmac module)
	if want := "GI+wH08beNOHg3JDA965i0NsqEUFInuZGE/pFaYVxSc="; sig != want {
		t.Fatalf("signature %s, want %s", sig, want)
	}
	u2, _ := url.Parse("https://hooks.example.com/unloq/hook?x=2")
	if SignUnloq([]byte("k"), u2, form) == sig || SignUnloq([]byte("k"), u, url.Values{"a": {"1"}, "b": {"3"}}) == sig {
		t.Fatal("the signature does not cover the query or the values")
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/x?y=1", true},
		{"http://127.0.0.1:8080/", true},
		{"ftp://hooks.example.com/", false},
		{"file:///etc/passwd", false},
		{"javascript:alert(1)", false},
		{"hooks.example.com/x", false},
		{"https://", false},
		{"https://u:p@hooks.example.com/", false},
		{"https://hooks.example.com/" + strings.Repeat("a", store.MaxWebhookURLBytes), false},
		{"", false},
	} {
		if err := CheckURL(c.url); (err == nil) != c.ok {
			t.Errorf("CheckURL(%.40q) = %v, want ok %v", c.url, err, c.ok)
		}
	}
}

// TestBackoffGrows: each wait is longer than the one before, jitter and
// all, and none passes the cap.
func TestBackoffGrows(t *testing.T) {
	s := New(Config{BackoffBase: time.Second})
	for run := 0; run < 100; run++ {
		prev := time.Duration(0)
		for n := 1; n < DefaultMaxAttempts; n++ {
			d := s.backoff(n)
			base := time.Second << (n - 1)
			if d <= prev || d < base*3/4 || d >= base*5/4 {
				t.Fatalf("attempt %d waits %v after %v", n, d, prev)
			}
			prev = d
		}
	}
	if d := s.backoff(40); d > maxBackoff*5/4 {
		t.Fatalf("backoff(40) = %v", d)
	}
}
