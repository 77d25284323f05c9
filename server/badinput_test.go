package server

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInputs sends malformed, hostile and merely wrong requests and checks
// each gets a 4xx JSON error naming the problem, never a 5xx, and that the
// server keeps serving after each.
func TestBadInputs(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("bad-input-1", "u1")
	good := string(e.validateBody(s, false, seedItems()...))
	okFrame := `{"seq":1,"ts":1763800000100,"type":"face","faces":1,"quality":0.9,"liveness":0.9,"embedding":"` +
		embB64(unitVec(newRand(1), testDim)) + `"}`

	nan := make([]byte, 4*testDim)
	binary.LittleEndian.PutUint32(nan, math.Float32bits(float32(math.NaN())))
	for i := 1; i < testDim; i++ {
		binary.LittleEndian.PutUint32(nan[4*i:], math.Float32bits(0.01))
	}
	frameSet := func(field, value string) string {
		fields := map[string]string{
			"seq": "1", "ts": "1763800000100", "type": `"face"`, "faces": "1", "quality": "0.9", "liveness": "0.9",
			"embedding": `"` + embB64(unitVec(newRand(2), testDim)) + `"`,
		}
		fields[field] = value
		var b strings.Builder
		b.WriteByte('{')
		first := true
		for _, k := range []string{"seq", "ts", "type", "faces", "quality", "liveness", "docType", "embedding"} {
			v, ok := fields[k]
			if !ok {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&b, "%q:%s", k, v)
		}
		b.WriteByte('}')
		return b.String()
	}
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	bomb := gzipBytes(bytes.Repeat([]byte(" "), 20<<20))
	zbomb := zstdBytes(bytes.Repeat([]byte(" "), 20<<20))
	// A valid frame that declares a 16 MiB window (as zstd --ultra -22 or
	// --long write), over the 8 MiB the server decodes: magic, a header
	// with no content size and window descriptor 14<<3 (2^(10+14) bytes),
	// then the body in one raw, last block.
	zwide := func() []byte {
		body := []byte(`{"cid":"c","csid":"abcdefgh","userID":"u","action":"a"}`)
		hdr := uint32(1) | uint32(len(body))<<3 // last block, raw
		f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 14 << 3, byte(hdr), byte(hdr >> 8), byte(hdr >> 16)}
		return append(f, body...)
	}()
	// A frame with a 1 KiB window and a 2000-byte raw block: corrupt (a
	// block may not exceed the window), whatever the decoder calls it.
	zcorrupt := func() []byte {
		hdr := uint32(1) | uint32(2000)<<3
		f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, byte(hdr), byte(hdr >> 8), byte(hdr >> 16)}
		return append(f, bytes.Repeat([]byte(" "), 2000)...)
	}()
	// A single-segment frame declaring n bytes of content (what zstd writes
	// for an n-byte input at --ultra -22): over the limit, not corrupt.
	zdeclaring := func(n uint32) []byte {
		body := []byte(`{}`)
		hdr := uint32(1) | uint32(len(body))<<3
		f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0, byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24), byte(hdr), byte(hdr >> 8), byte(hdr >> 16)}
		return append(f, body...)
	}
	zdeclared := zdeclaring(16 << 20) // over the decoder's 8 MiB too
	zdeclared2 := zdeclaring(2 << 20) // over validate's 1 MiB only: the header says so first
	// A valid frame, then one that declares 16 MiB: only the decoder sees
	// the second frame's header.
	zsecond := append(zstdBytes([]byte(`{"cid":"c",`)), zdeclared...)
	digits200 := "1" + strings.Repeat("0", 199)
	items257 := make([]string, 257)
	for i := range items257 {
		items257[i] = fmt.Sprintf(`{"key":"k%d","value":1}`, i)
	}

	type tc struct {
		name    string
		route   string // "validate" (default), "events", "sessions"
		body    string
		raw     []byte   // body bytes, when not valid UTF-8 text
		headers []string // extra headers
		noCT    bool
		rawConn bool // write the request on a raw in-memory connection (the server closes it mid-body)
		status  int
		code    string
		says    string // a substring the message must contain
	}
	cases := []tc{
		{name: "empty body", body: "", status: 400, code: "empty_body"},
		{name: "whitespace only", body: " \n\t ", status: 400, code: "empty_body"},
		{name: "truncated", body: good[:len(good)/2], status: 400, code: "invalid_json", says: "at byte"},
		{name: "truncated string", body: `{"cid":"abc`, status: 400, code: "invalid_json", says: "unterminated string"},
		{name: "not an object", body: `[]`, status: 400, code: "wrong_type", says: "the request body must be an object, not an array"},
		{name: "a bare string", body: `"hello"`, status: 400, code: "wrong_type"},
		{name: "cid a number", body: strings.Replace(good, `"cid":"`+e.org.CID+`"`, `"cid":5`, 1), status: 400, code: "wrong_type", says: "cid must be a string, not a number"},
		{name: "isEnrollment a string", body: strings.Replace(good, `"isEnrollment":false`, `"isEnrollment":"true"`, 1), status: 400, code: "wrong_type", says: "isEnrollment must be true or false"},
		{name: "additionalData an array", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":[]}`, status: 400, code: "wrong_type", says: "additionalData must be an object"},
		{name: "sessionData an object", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":{}}}`, status: 400, code: "wrong_type", says: "additionalData.sessionData must be an array"},
		{name: "value an object", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"a","value":{"x":1}}]}}`, status: 400, code: "wrong_type", says: "additionalData.sessionData[0].value must be a string, number, boolean or null"},
		{name: "synonym a number", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"a","value":1,"synonyms":["b",2]}]}}`, status: 400, code: "wrong_type", says: "additionalData.sessionData[0].synonyms[1] must be a string"},
		{name: "invalid UTF-8 in a value", raw: []byte("{\"cid\":\"c\",\"csid\":\"abcdefgh\",\"userID\":\"u\xff\xfe\",\"action\":\"a\"}"), status: 400, code: "invalid_utf8", says: "userID"},
		{name: "invalid UTF-8 in a key", raw: []byte("{\"ci\xc3\":\"c\"}"), status: 400, code: "invalid_utf8"},
		{name: "overlong UTF-8", raw: []byte("{\"cid\":\"\xc0\xaf\"}"), status: 400, code: "invalid_utf8"},
		{name: "UTF-8 surrogate", raw: []byte("{\"cid\":\"\xed\xa0\x80\"}"), status: 400, code: "invalid_utf8"},
		{name: "duplicate sessionData keys", body: strings.Replace(good, `"key":"payeeID"`, `"key":"amount"`, 1), status: 400, code: "duplicate_key", says: "additionalData.sessionData[1].key"},
		{name: "duplicate keys up to case", body: strings.Replace(good, `"key":"payeeID"`, `"key":"AMOUNT"`, 1), status: 400, code: "duplicate_key"},
		{name: "duplicate JSON field", body: `{"cid":"c","cid":"d","csid":"abcdefgh","userID":"u","action":"a"}`, status: 400, code: "duplicate_field", says: "cid appears twice"},
		{name: "duplicate field through an escape", body: `{"cid":"c","c\u0069d":"d","csid":"abcdefgh","userID":"u","action":"a"}`, status: 400, code: "duplicate_field"},
		{name: "5000-deep nesting", body: deep, status: 400, code: "nesting_too_deep", says: "16 levels"},
		{name: "deep nesting in a value", body: `{"cid":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 20) + `}`, status: 400, code: "nesting_too_deep"},
		{name: "200-digit number value", body: strings.Replace(good, `"value":35`, `"value":`+digits200, 1), status: 400, code: "invalid_field", says: "additionalData.sessionData[0].value: number of more than 100 digits"},
		{name: "200-digit string number value", body: strings.Replace(good, `"value":35`, `"value":"`+digits200+`"`, 1), status: 400, code: "invalid_field", says: "number of more than 100 digits"},
		{name: "huge exponent", body: strings.Replace(good, `"value":35`, `"value":1e99999`, 1), status: 400, code: "invalid_field", says: "exponent"},
		{name: "unknown field", body: strings.Replace(good, `"isEnrollment"`, `"extra":1,"isEnrollment"`, 1), status: 400, code: "unknown_field", says: "unknown field extra"},
		{name: "unknown nested field", body: strings.Replace(good, `"key":"amount"`, `"key":"amount","weight":2`, 1), status: 400, code: "unknown_field", says: "additionalData.sessionData[0].weight"},
		{name: "field name of the wrong case", body: strings.Replace(good, `"userID"`, `"userId"`, 1), status: 400, code: "unknown_field", says: "userId"},
		{name: "missing csid", body: `{"cid":"c","userID":"u","action":"a"}`, status: 400, code: "missing_field", says: "csid is required"},
		{name: "missing item value", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"a"}]}}`, status: 400, code: "missing_field", says: "additionalData.sessionData[0].value is required"},
		{name: "trailing data", body: good + ` x`, status: 400, code: "trailing_data"},
		{name: "two JSON values", body: good + good, status: 400, code: "trailing_data"},
		{name: "raw control character", body: "{\"cid\":\"a\tb\"}", status: 400, code: "invalid_json", says: "control character"},
		{name: "bad escape", body: `{"cid":"\x41"}`, status: 400, code: "invalid_json", says: "escape"},
		{name: "leading zero", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"a","value":01}]}}`, status: 400, code: "invalid_json"},
		{name: "NaN literal", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"a","value":NaN}]}}`, status: 400, code: "invalid_json"},
		{name: "single quotes", body: `{'cid':'c'}`, status: 400, code: "invalid_json"},
		{name: "trailing comma", body: `{"cid":"c",}`, status: 400, code: "invalid_json"},
		{name: "257 items", body: `{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[` + strings.Join(items257, ",") + `]}}`, status: 400, code: "too_many_items", says: "256"},
		{name: "empty key", body: `{"cid":"` + e.org.CID + `","csid":"` + s.csid + `","userID":"u1","action":"a","additionalData":{"sessionData":[{"key":"","value":1}]}}`, status: 400, code: "invalid_field", says: "additionalData.sessionData[0]"},
		{name: "bad csid", body: `{"cid":"` + e.org.CID + `","csid":"short","userID":"u1","action":"a"}`, status: 400, code: "invalid_field", says: "csid must be 8 to 128"},
		{name: "empty userID", body: `{"cid":"` + e.org.CID + `","csid":"abcdefgh","userID":"","action":"a"}`, status: 400, code: "invalid_field", says: "userID"},
		{name: "wrong content type", body: good, headers: []string{"Content-Type", "text/plain"}, status: 415, code: "unsupported_media_type"},
		{name: "no content type", body: good, noCT: true, status: 415, code: "unsupported_media_type"},
		{name: "unsupported content encoding", body: good, headers: []string{"Content-Encoding", "br"}, status: 415, code: "unsupported_encoding"},
		{name: "corrupt gzip", body: "\x1f\x8b\x08\x00garbage", headers: []string{"Content-Encoding", "gzip"}, status: 400, code: "bad_encoding", says: "gzip"},
		{name: "not gzip at all", body: good, headers: []string{"Content-Encoding", "gzip"}, status: 400, code: "bad_encoding"},
		{name: "corrupt zstd", body: "\x28\xb5\x2f\xfdjunkjunk", headers: []string{"Content-Encoding", "zstd"}, status: 400, code: "bad_encoding", says: "zstd"},
		{name: "gzip bomb", raw: bomb, headers: []string{"Content-Encoding", "gzip"}, status: 413, code: "body_too_large", says: "decompresses to more than 1 MiB"},
		{name: "zstd bomb", raw: zbomb, headers: []string{"Content-Encoding", "zstd"}, status: 413, code: "body_too_large"},
		{name: "zstd block over its window", raw: zcorrupt, headers: []string{"Content-Encoding", "zstd"}, status: 400, code: "bad_encoding", says: "corrupt"},
		{name: "zstd declaring 16 MiB", raw: zdeclared, headers: []string{"Content-Encoding", "zstd"}, status: 413, code: "body_too_large", says: "decompresses to more than 1 MiB"},
		{name: "zstd declaring 2 MiB", raw: zdeclared2, headers: []string{"Content-Encoding", "zstd"}, status: 413, code: "body_too_large", says: "decompresses to more than 1 MiB"},
		{name: "zstd, a second frame declaring 16 MiB", raw: zsecond, headers: []string{"Content-Encoding", "zstd"}, status: 413, code: "body_too_large", says: "decompresses to more than 1 MiB"},
		{name: "zstd window over 8 MiB", raw: zwide, headers: []string{"Content-Encoding", "zstd"}, status: 413, code: "body_too_large", says: "window larger than 8 MiB"},
		{name: "oversize body", body: `{"cid":"` + strings.Repeat("a", 2<<20) + `"}`, rawConn: true, status: 413, code: "body_too_large"},
		{name: "bad idempotency key", body: good, headers: []string{"Idempotency-Key", "has space"}, status: 400, code: "invalid_header", says: "Idempotency-Key"},
		{name: "idempotency key too long", body: good, headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, status: 400, code: "invalid_header"},

		// Events.
		{name: "events: bad base64", route: "events", body: `{"frames":[` + frameSet("embedding", `"`+strings.Repeat("!", base64.StdEncoding.EncodedLen(4*testDim))+`"`) + `]}`, status: 400, code: "invalid_field", says: "frames[0].embedding is not valid standard base64"},
		{name: "events: wrong embedding size", route: "events", body: `{"frames":[` + frameSet("embedding", `"`+embB64(unitVec(newRand(3), 128))+`"`) + `]}`, status: 400, code: "invalid_field", says: "frames[0].embedding must be standard base64 of 2048 bytes"},
		{name: "events: NaN embedding", route: "events", body: `{"frames":[` + okFrame + `,` + frameSet("embedding", `"`+base64.StdEncoding.EncodeToString(nan)+`"`) + `]}`, status: 400, code: "invalid_field", says: "frames[1]: embedding has a NaN"},
		{name: "events: zero embedding", route: "events", body: `{"frames":[` + frameSet("embedding", `"`+base64.StdEncoding.EncodeToString(make([]byte, 4*testDim))+`"`) + `]}`, status: 400, code: "invalid_field", says: "all zeros"},
		{name: "events: quality above 1", route: "events", body: `{"frames":[` + frameSet("quality", "1.5") + `]}`, status: 400, code: "invalid_field", says: "frames[0].quality must be a number from 0 to 1"},
		{name: "events: 200-digit quality", route: "events", body: `{"frames":[` + frameSet("quality", digits200) + `]}`, status: 400, code: "invalid_field", says: "quality"},
		{name: "events: 65 faces", route: "events", body: `{"frames":[` + frameSet("faces", "65") + `]}`, status: 400, code: "invalid_field", says: "frames[0].faces must be an integer from 0 to 64"},
		{name: "events: unknown frame type", route: "events", body: `{"frames":[` + frameSet("type", `"selfie"`) + `]}`, status: 400, code: "invalid_field", says: `frames[0].type must be "face" or "document"`},
		{name: "events: unknown docType", route: "events", body: `{"frames":[` + frameSet("docType", `"visa"`) + `]}`, status: 400, code: "invalid_field", says: "docType"},
		{name: "events: negative seq", route: "events", body: `{"frames":[` + frameSet("seq", "-1") + `]}`, status: 400, code: "invalid_field", says: "frames[0].seq must be a non-negative integer"},
		{name: "events: seq -0", route: "events", body: `{"frames":[` + frameSet("seq", "-0") + `]}`, status: 400, code: "invalid_field", says: "frames[0].seq must be a non-negative integer"},
		{name: "events: fractional ts", route: "events", body: `{"frames":[` + frameSet("ts", "1.5") + `]}`, status: 400, code: "wrong_type", says: "frames[0].ts must be an integer"},
		{name: "events: 200-digit ts", route: "events", body: `{"frames":[` + frameSet("ts", digits200) + `]}`, status: 400, code: "invalid_field", says: "frames[0].ts"},
		// ts: Unix milliseconds from 2020-01-01 to a day past the server's
		// clock (1763800000000 in these tests).
		{name: "events: frame ts 0", route: "events", body: `{"frames":[` + frameSet("ts", "0") + `]}`, status: 400, code: "invalid_field", says: "frames[0].ts must be Unix milliseconds from 1577836800000 (2020-01-01T00:00:00Z) to 24 h past the server's clock, 1763886400000 now; got 0"},
		{name: "events: negative frame ts", route: "events", body: `{"frames":[` + frameSet("ts", "-1763800000100") + `]}`, status: 400, code: "invalid_field", says: "frames[0].ts must be Unix milliseconds"},
		{name: "events: frame ts in seconds", route: "events", body: `{"frames":[` + okFrame + `,` + frameSet("ts", "1763800000") + `]}`, status: 400, code: "invalid_field", says: "frames[1].ts must be Unix milliseconds"},
		{name: "events: frame ts in the year 3000", route: "events", body: `{"frames":[` + frameSet("ts", "32503680000000") + `]}`, status: 400, code: "invalid_field", says: "got 32503680000000"},
		{name: "events: frame ts a day and 1 ms ahead", route: "events", body: `{"frames":[` + frameSet("ts", "1763886400001") + `]}`, status: 400, code: "invalid_field", says: "frames[0].ts"},
		{name: "events: negative field ts", route: "events", body: `{"fields":[{"key":"a","value":1,"ts":-5}]}`, status: 400, code: "invalid_field", says: "fields[0].ts must be Unix milliseconds"},
		{name: "events: field ts in the year 3000", route: "events", body: `{"fields":[{"key":"a","value":1,"ts":1763800000000},{"key":"b","value":1,"ts":32503680000000}]}`, status: 400, code: "invalid_field", says: "fields[1].ts must be Unix milliseconds from 1577836800000"},
		{name: "events: 65 frames", route: "events", body: `{"frames":[` + strings.Repeat(okFrame+",", 64) + okFrame + `]}`, status: 400, code: "too_many_items", says: "frames has more than 64 items"},
		{name: "events: value an array", route: "events", body: `{"fields":[{"key":"a","value":[1]}]}`, status: 400, code: "wrong_type", says: "fields[0].value"},
		{name: "events: a value over 4 KiB as sent", route: "events", body: `{"fields":[{"key":"memo","value":"` + strings.Repeat("x", 4095) + `"}]}`, status: 400, code: "invalid_field", says: "fields[0].value: value longer than 4096 bytes as sent"},
		{name: "events: 200-digit field value", route: "events", body: `{"fields":[{"key":"a","value":` + digits200 + `}]}`, status: 400, code: "invalid_field", says: "fields[0].value: number of more than 100 digits"},
		{name: "events: empty field key", route: "events", body: `{"fields":[{"key":"","value":1}]}`, status: 400, code: "invalid_field", says: "fields[0].key"},
		{name: "events: final a string", route: "events", body: `{"final":"yes"}`, status: 400, code: "wrong_type", says: "final"},
		{name: "events: missing embedding", route: "events", body: `{"frames":[{"seq":1,"ts":1763800000100,"type":"face"}]}`, status: 400, code: "missing_field", says: "frames[0].embedding is required"},

		// Session creation.
		{name: "sessions: short csid", route: "sessions", body: `{"csid":"short","userID":"u","action":"a"}`, status: 400, code: "invalid_field", says: "csid"},
		{name: "sessions: csid with a slash", route: "sessions", body: `{"csid":"abc/defgh","userID":"u","action":"a"}`, status: 400, code: "invalid_field", says: "csid"},
		{name: "sessions: control character in userID", route: "sessions", body: `{"csid":"abcdefgh","userID":"u\u0000","action":"a"}`, status: 400, code: "invalid_field", says: "userID"},
		{name: "sessions: lone surrogate in userID", route: "sessions", body: `{"csid":"abcdefgh","userID":"u\ud800","action":"a"}`, status: 400, code: "invalid_utf8", says: "lone UTF-16 surrogate"},
		{name: "events: lone surrogate in a value", route: "events", body: `{"fields":[{"key":"memo","value":"\udfff"}]}`, status: 400, code: "invalid_utf8", says: "lone UTF-16 surrogate"},
		{name: "sessions: C1 control character in userID", route: "sessions", body: `{"csid":"abcdefgh","userID":"user\u0085x","action":"a"}`, status: 400, code: "invalid_field", says: "userID"},
		{name: "sessions: C1 control character in action", route: "sessions", body: `{"csid":"abcdefgh","userID":"u","action":"transfer\u009b"}`, status: 400, code: "invalid_field", says: "action"},
		{name: "sessions: userID too long", route: "sessions", body: `{"csid":"abcdefgh","userID":"` + strings.Repeat("u", 257) + `","action":"a"}`, status: 400, code: "invalid_field", says: "userID"},
		{name: "sessions: action too long", route: "sessions", body: `{"csid":"abcdefgh","userID":"u","action":"` + strings.Repeat("a", 257) + `"}`, status: 400, code: "invalid_field", says: "action, when given, must be at most 256 bytes"},
		{name: "sessions: action null", route: "sessions", body: `{"csid":"abcdefgh","userID":"u","action":null}`, status: 400, code: "wrong_type", says: "action"},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.raw
			if body == nil {
				body = []byte(c.body)
			}
			var r response
			switch {
			case c.rawConn:
				r = e.rawInmem("POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\napikey: " + e.apiKey +
					"\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + string(body))
			case c.route == "events":
				r = e.postEvents(s, body, c.headers...)
				if c.noCT {
					t.Fatal("noCT is for validate cases")
				}
			case c.route == "sessions":
				r = e.do(req{path: "/v1/sessions", body: body, headers: append([]string{"x-client-id", e.org.CID}, c.headers...)})
			default:
				r = e.do(req{path: "/v1/validate", body: body, headers: e.withKey(c.headers...), noCT: c.noCT})
			}
			if r.status != c.status || r.errorCode() != c.code {
				t.Fatalf("got %s, want %d %s", r, c.status, c.code)
			}
			if r.header["content-type"] != "application/json" {
				t.Errorf("content-type %q", r.header["content-type"])
			}
			m := jsonMap(t, r.body)
			if m["success"] != false || len(m) != 3 {
				t.Errorf("not the native envelope: %s", r.body)
			}
			if !strings.Contains(r.errorMessage(), c.says) {
				t.Errorf("message %q does not say %q", r.errorMessage(), c.says)
			}
			if h := e.do(req{path: "/healthz"}); h.status != 200 {
				t.Fatalf("server not serving after: %s", h)
			}
		})
	}
	// Nothing of the above was stored.
	sess, err := e.db.Session(e.org.ID, s.csid)
	if err != nil || sess.FramesReceived != 0 {
		t.Errorf("session after bad inputs: %+v, %v", sess, err)
	}
	if _, err := e.db.Session(e.org.ID, "abcdefgh"); err == nil {
		t.Error("a refused session was created")
	}
}

// TestBadInputsOverSocket repeats the transport-level cases on a real socket.
func TestBadInputsOverSocket(t *testing.T) {
	e := newEnv(t)
	addr := e.serveTCP()
	// Missing Content-Type (fasthttp's client would add one).
	resp, body := rawExchange(t, addr, "POST /v1/validate HTTP/1.1\r\nHost: x\r\napikey: "+e.apiKey+"\r\nContent-Length: 2\r\n\r\n{}")
	if resp.StatusCode != 415 || !bytes.Contains(body, []byte("unsupported_media_type")) {
		t.Errorf("no content type: %d %s", resp.StatusCode, body)
	}
	// An oversized announced events body is refused on a keep-alive
	// connection that then closes: the body was never read.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /v1/sessions/abcdefgh/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 413 || !bytes.Contains(b, []byte("4 MiB")) || !res.Close {
		t.Errorf("announced 100 MiB events body: %d close=%v %s", res.StatusCode, res.Close, b)
	}
	if r := e.do(req{path: "/healthz"}); r.status != 200 {
		t.Fatalf("not serving: %s", r)
	}
}

// TestTransportRefusalsSayWhy: a request fasthttp cannot parse is answered
// 400 with fasthttp's reason, not only "could not be parsed".
func TestTransportRefusalsSayWhy(t *testing.T) {
	e := newEnv(t)
	addr := e.serveTCP()
	for _, c := range []struct{ raw, says string }{
		{"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}", "Content-Length is given more than once"},
		{"POST /v1/validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding is not supported"},
		{"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "could not be parsed."},
		// fasthttp's own message would quote the request, key included.
		{"POST /v1/validate\r\nHost: x\r\napikey: SECRETKEY123\r\n\r\n", "could not be parsed."},
		{"POST /v1/validate HTTP/1.1\r\nHost: x\r\nX-A: SECRET\x01KEY\r\n\r\n", "could not be parsed."},
	} {
		resp, body := rawExchange(t, addr, c.raw)
		if resp.StatusCode != 400 || !bytes.Contains(body, []byte(c.says)) || bytes.Contains(body, []byte("buffer size")) ||
			bytes.Contains(body, []byte("SECRET")) {
			t.Errorf("%q: %d %s", c.raw, resp.StatusCode, body)
		}
	}
}

// TestOversizedBodyAnswerArrives: a client that sends its whole request,
// body over the limit included, before it reads (as Python's http.client
// does) gets the 413. Closed at once with the body unread, the connection
// was reset and the answer lost with it.
func TestOversizedBodyAnswerArrives(t *testing.T) {
	t.Run("capped", func(t *testing.T) { oversizedBodyAnswerArrives(t, newEnv(t)) })
	// With no per-IP cap the connections are wrapped all the same.
	t.Run("uncapped", func(t *testing.T) {
		oversizedBodyAnswerArrives(t, newEnv(t, withConfig(func(c *Config) { c.MaxConnsPerIP = -1 })))
	})
}

func oversizedBodyAnswerArrives(t *testing.T, e *testEnv) {
	addr := e.serveTCP()
	for _, size := range []int{2 << 20, 6 << 20, -(2 << 20), -(6 << 20)} {
		// A negative size: the same with "Expect: 100-continue", the body
		// sent without waiting for the 100 (the refusal comes first).
		expect := ""
		if size < 0 {
			size, expect = -size, "Expect: 100-continue\r\n"
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		body := bytes.Repeat([]byte(" "), size)
		req := fmt.Sprintf("POST /v1/validate HTTP/1.1\r\nHost: x\r\napikey: k\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", expect, size)
		if _, err := c.Write(append([]byte(req), body...)); err != nil {
			t.Fatalf("%d bytes: writing the request: %v", size, err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d bytes: reading the answer: %v", size, err)
		}
		b, _ := io.ReadAll(res.Body)
		c.Close()
		if res.StatusCode != 413 || !bytes.Contains(b, []byte("body_too_large")) {
			t.Errorf("%d bytes: %d %s", size, res.StatusCode, b)
		}
	}
}

// TestRepeatedCredentialHeaders: apikey, x-client-id, x-collect-token and
// Idempotency-Key sent twice are refused by name (400 invalid_header)
// rather than the first one winning; an empty Idempotency-Key is refused,
// not taken for none.
func TestRepeatedCredentialHeaders(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("repeated-hdr-1", "u1")
	vbody := string(e.validateBody(s, false))
	post := func(path, headers, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + headers +
			"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	}
	key := "apikey: " + e.apiKey + "\r\n"
	for _, c := range []struct{ name, raw, says string }{
		{"apikey twice", post("/v1/validate", key+key, vbody), "apikey is given more than once"},
		{"apikey twice, one other", post("/v1/validate", key+"apikey: csk_other\r\n", vbody), "apikey is given more than once"},
		{"Idempotency-Key twice", post("/v1/validate", key+"Idempotency-Key: a\r\nIdempotency-Key: b\r\n", vbody), "Idempotency-Key is given more than once"},
		{"Idempotency-Key empty", post("/v1/validate", key+"Idempotency-Key: \r\n", vbody), "Idempotency-Key must be 1 to 255"},
		{"x-client-id twice", post("/v1/sessions", "x-client-id: "+e.org.CID+"\r\nx-client-id: "+e.org.CID+"\r\n",
			`{"csid":"repeated-hdr-2","userID":"u","action":"a"}`), "x-client-id is given more than once"},
		{"x-collect-token twice", post("/v1/sessions/"+s.csid+"/events", "x-client-id: "+e.org.CID+"\r\nx-collect-token: "+s.token+
			"\r\nx-collect-token: "+s.token+"\r\n", `{"fields":[{"key":"a","value":1}]}`), "x-collect-token is given more than once"},
	} {
		r := e.rawInmem(c.raw)
		if r.status != 400 || r.errorCode() != "invalid_header" || !strings.Contains(r.errorMessage(), c.says) {
			t.Errorf("%s: %s", c.name, r)
		}
	}
	if _, err := e.db.Session(e.org.ID, "repeated-hdr-2"); err == nil {
		t.Error("a session was created with a repeated x-client-id")
	}
	if got, _ := e.db.Session(e.org.ID, s.csid); len(got.UserID) == 0 {
		t.Fatal("the session is gone")
	}
	if f, _ := e.db.Fields(e.org.ID, s.csid, nil); len(f) != 0 {
		t.Errorf("fields stored with a repeated x-collect-token: %v", f)
	}
}

// TestCredentialInTrailer: fasthttp merges a chunked body's trailer into
// the headers; an apikey or Idempotency-Key that comes only there is
// refused, since proxies that check headers never see it.
func TestCredentialInTrailer(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("trailer-key-1", "u1")
	body := string(e.validateBody(s, false))
	chunked := func(headers, trailer string) string {
		return "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n" + headers +
			"\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n", len(body), body) + trailer + "\r\n"
	}
	key := "apikey: " + e.apiKey + "\r\n"
	for _, c := range []struct{ name, raw, says string }{
		{"apikey in the trailer", chunked("Trailer: apikey\r\n", key), "apikey must come with the request's headers"},
		{"undeclared apikey trailer", chunked("", key), "apikey must come with the request's headers"},
		{"Idempotency-Key in the trailer", chunked(key, "Idempotency-Key: k1\r\n"), "Idempotency-Key must come with the request's headers"},
	} {
		if r := e.rawInmem(c.raw); r.status != 400 || r.errorCode() != "invalid_header" || !strings.Contains(r.errorMessage(), c.says) {
			t.Errorf("%s: %s", c.name, r)
		}
	}
	// The same request with its key among the headers is answered.
	if r := e.rawInmem(chunked(key, "")); r.status != 200 {
		t.Errorf("chunked, key in the headers: %s", r)
	}
}

// TestTLSOnPlainPort: a TLS ClientHello sent to the plain-HTTP port is
// answered at once (400, in plain HTTP, which a TLS client reports as not
// TLS), not after the 10 s read timeout with "not received in time".
func TestTLSOnPlainPort(t *testing.T) {
	e := newEnv(t)
	addr := e.serveTCP()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // half the server's read timeout
	// The start of a TLS 1.2 ClientHello record: handshake (0x16), version, length.
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0xf1, 0x01, 0x00, 0x00, 0xed, 0x03, 0x03}); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 400 || !bytes.Contains(b, []byte("plain HTTP")) {
		t.Errorf("%d %s", res.StatusCode, b)
	}
}
