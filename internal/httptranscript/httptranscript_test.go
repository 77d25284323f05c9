package httptranscript

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// echoServer is a real HTTP server on a loopback socket that answers what
// it received, so the runner's requests and rendering can be checked
// against an independent implementation.
func echoServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	var calls atomic.Int64
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var decoded []byte
		switch r.Header.Get("Content-Encoding") {
		case "gzip":
			zr, err := gzip.NewReader(strings.NewReader(string(b)))
			if err == nil {
				decoded, _ = io.ReadAll(zr)
			}
		case "zstd":
			zr, _ := zstd.NewReader(nil)
			decoded, _ = zr.DecodeAll(b, nil)
			zr.Close()
		default:
			decoded = b
		}
		w.Header().Set("Content-Type", "application/json")
		out, _ := json.Marshal(map[string]any{
			"method": r.Method, "host": r.Host, "contentLength": r.ContentLength,
			"transferEncoding": r.TransferEncoding, "contentEncoding": r.Header.Get("Content-Encoding"),
			"body": string(decoded), "header": r.Header.Get("X-Echo"),
		})
		_, _ = w.Write(out)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.Header().Set("X-Request-Id", "not shown unless asked")
		// A time that differs from call to call, as a real one does.
		at := time.Now().UnixNano() + calls.Add(1)
		_, _ = io.WriteString(w, `{"token":"tok_`+hex.EncodeToString(b[:])+`", "expiresAt": `+
			strconv.FormatInt(at, 10)+`,"name":"`+r.URL.Query().Get("name")+`"}`)
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, "shown decompressed")
		_ = zw.Close()
	})
	// /stream holds its answer until /release is asked, then sends two
	// chunks, each flushed alone: a held request and an event stream.
	release := make(chan struct{})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) { close(release) })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "\n{\"event\":\"pending\",\"id\":\"tok_1\"}\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "\n{\"event\":\"done\"}\n")
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte{'a', 0, 0xff})
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = c.Close()
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// TestTranscriptRunner runs testdata/*.txt against the echo server.
func TestTranscriptRunner(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := echoServer(t)
		r := &Runner{Addr: s.Listener.Addr().String(), Mask: []string{"expiresAt"}}
		r.Set("secret", "s3cr3t-value", false)
		r.Commands = map[string]func(testing.TB, *datadriven.TestData) string{
			"vars": func(testing.TB, *datadriven.TestData) string {
				v, _ := r.Var("tok")
				return "tok is " + strings.Repeat("x", len(v))
			},
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return r.Run(t, d) })
	})
}

func TestTranscriptExpand(t *testing.T) {
	v := Vars{"a": "1", "ab": "2", "x_9": "3"}
	for in, want := range map[string]string{
		"$a $ab ${a}b $x_9.": "1 2 1b 3.",
		"cost $$5":           "cost $5",
		"no variables":       "no variables",
	} {
		if got, err := v.Expand(in); err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"$nope", "${a", "$", "$9"} {
		if _, err := v.Expand(in); !errors.Is(err, ErrUnknownVar) {
			t.Errorf("Expand(%q): %v, want ErrUnknownVar", in, err)
		}
	}
}

func TestTranscriptUnescape(t *testing.T) {
	got, err := Unescape(`a\r\n\t\0\\\xff\x41`)
	if err != nil || string(got) != "a\r\n\t\x00\\\xffA" {
		t.Errorf("Unescape: %q, %v", got, err)
	}
	for _, in := range []string{`\u0041`, `\x4`, `\xzz`, `end\`} {
		if _, err := Unescape(in); !errors.Is(err, ErrBadEscape) {
			t.Errorf("Unescape(%q): %v, want ErrBadEscape", in, err)
		}
	}
}

func TestTranscriptBuildRequest(t *testing.T) {
	cases := []struct {
		text string
		o    RequestOptions
		want string
	}{
		{"GET /x HTTP/1.1\nA: b", RequestOptions{Host: "h"}, "GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n"},
		{"POST /x HTTP/1.1\nHost: given\n\n{}", RequestOptions{Host: "h"}, "POST /x HTTP/1.1\r\nHost: given\r\nContent-Length: 2\r\n\r\n{}"},
		{"POST /x HTTP/1.1\nContent-Length: 9\n\n{}", RequestOptions{}, "POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\n{}"},
		{"POST /x HTTP/1.1", RequestOptions{}, "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n"},
		{"POST /x HTTP/1.1\nTransfer-Encoding: chunked\n\n2\n{}\n0\n", RequestOptions{}, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"},
		{"POST /x HTTP/1.1\n\nab", RequestOptions{Chunked: true}, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"},
		{`POST /x HTTP/1.1` + "\n\n" + `"\u00e9\xff"`, RequestOptions{Bytes: true}, "POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\n\"\\u00e9\xff\""},
		{"GET /x HTTP/1.0", RequestOptions{Host: "h"}, "GET /x HTTP/1.0\r\n\r\n"},
	}
	for _, c := range cases {
		got, _, err := BuildRequest(c.text, c.o)
		if err != nil || string(got) != c.want {
			t.Errorf("BuildRequest(%q):\n got %q, %v\nwant %q", c.text, got, err, c.want)
		}
	}
	if _, _, err := BuildRequest("GET / HTTP/1.1\nno colon", RequestOptions{}); !errors.Is(err, ErrBadHeader) {
		t.Errorf("a header without a colon: %v", err)
	}
	if _, _, err := BuildRequest("\n\nbody", RequestOptions{}); !errors.Is(err, ErrNoRequestLine) {
		t.Errorf("no request line: %v", err)
	}
}

func TestTranscriptMasks(t *testing.T) {
	var m Masks
	got := m.Apply([]byte(`{"id":"a\"b","at": 17,"in":{"id":"c"},"x":"id","again":{"id" : "a\"b"},"none":{"at":null}}`), []string{"id", "at"})
	want := `{"id":"<id-1>","at": <at-1>,"in":{"id":"<id-2>"},"x":"id","again":{"id" : "<id-1>"},"none":{"at":null}}`
	if string(got) != want {
		t.Errorf("Apply:\n got %s\nwant %s", got, want)
	}
	back := substituteBack([]byte(`key k-123456789 and k-12345678`), Vars{"long": "k-123456789", "short": "k-12345678", "tiny": "k"},
		[]string{"short", "long", "tiny"})
	if string(back) != "key $long and $short" {
		t.Errorf("substituteBack: %s", back)
	}
}
