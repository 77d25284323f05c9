package httpd

import (
	"net"
	"testing"
	"time"
)

func TestResponseEncodingNegotiation(t *testing.T) {
	cases := map[string]string{
		"":                        "",
		"gzip":                    "gzip",
		"GZIP":                    "gzip",
		"x-gzip":                  "gzip",
		"deflate, gzip, br, zstd": "zstd",
		"zstd;q=0, gzip":          "gzip",
		"gzip;q=0":                "",
		"gzip; q=0.000":           "",
		"gzip;q=0.5":              "gzip",
		"br":                      "",
		"*":                       "",
		"identity":                "",
	}
	for in, want := range cases {
		if got := responseEncoding([]byte(in)); got != want {
			t.Errorf("responseEncoding(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONContentType(t *testing.T) {
	for in, want := range map[string]bool{
		"application/json":                  true,
		"Application/JSON":                  true,
		"application/json; charset=utf-8":   true,
		" application/json ;charset=UTF-8":  true,
		"application/jsonx":                 false,
		"text/plain":                        false,
		"":                                  false,
		"application/x-www-form-urlencoded": false,
	} {
		if got := isJSONContentType([]byte(in)); got != want {
			t.Errorf("isJSONContentType(%q) = %v", in, got)
		}
	}
}

// TestRawHasHeader: a header's line is found whatever its case, and not
// as the prefix of another name.
func TestRawHasHeader(t *testing.T) {
	raw := []byte("Host: x\r\nAPIKEY: k\r\nApikey-Extra: y\r\nx-client-id:c\r\n\r\n")
	for name, want := range map[string]bool{"apikey": true, "X-Client-ID": true, "host": true, "idempotency-key": false, "apikey-extr": false, "Apikey-Extra": true} {
		if got := rawHasHeader(raw, name); got != want {
			t.Errorf("rawHasHeader(%q) = %v", name, got)
		}
	}
}

// TestLingeringSlotsFull: with every lingering slot taken, a connection
// refused mid-request closes at once (and is released at once) rather
// than waiting for a slot; with a slot free it lingers in the background.
func TestLingeringSlotsFull(t *testing.T) {
	for range lingerSlots {
		lingering <- struct{}{}
	}
	a, b := net.Pipe()
	defer b.Close()
	released := false
	if err := closeLingering(a, func() { released = true }); err != nil || !released {
		t.Fatalf("all slots busy: err %v, released %v", err, released)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("the connection is still open")
	}
	for range lingerSlots {
		<-lingering
	}
	c, d := net.Pipe()
	done := make(chan struct{})
	if err := closeLingering(c, func() { close(done) }); err != nil {
		t.Fatal(err)
	}
	_, _ = d.Write([]byte("the rest of a body")) // read and dropped by the lingering close
	d.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the lingering close never released the connection")
	}
}
