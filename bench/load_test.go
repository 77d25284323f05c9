package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// serveInmem serves h on an in-memory listener and returns a dialer for it.
func serveInmem(t *testing.T, h fasthttp.RequestHandler) func(string) (net.Conn, error) {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return func(string) (net.Conn, error) { return ln.Dial() }
}

func staticOp(name string, expect int) *Op {
	return &Op{
		Name:   name,
		Expect: expect,
		Setup: func(req *fasthttp.Request) {
			req.SetRequestURI("http://bench.test/v1/validate")
			req.Header.SetContentType("application/json")
		},
		Prepare: func(i uint64, req *fasthttp.Request) { req.SetBodyString(`{"i":1}`) },
	}
}

func TestSummarize(t *testing.T) {
	h := newHistogram()
	for v := 1; v <= 1000; v++ {
		recordLatency(h, time.Duration(v)*time.Microsecond)
	}
	recordLatency(h, 0)                // clamped up, still counted
	recordLatency(h, 1000*time.Second) // clamped down, still counted
	l := summarize(h)
	if l.Count != 1002 {
		t.Fatalf("count %d, want 1002", l.Count)
	}
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if !near(l.P50, 500) || !near(l.P90, 900) || !near(l.P99, 990) {
		t.Fatalf("p50 %v p90 %v p99 %v", l.P50, l.P90, l.P99)
	}
	if !near(l.Max, 100e6) {
		t.Fatalf("max %vµs, want the 100 s clamp", l.Max)
	}
	last := l.Curve[len(l.Curve)-1]
	if last.Percentile != 100 || last.Us != l.Max {
		t.Fatalf("curve ends at %+v", last)
	}
	for i := 1; i < len(l.Curve); i++ {
		if l.Curve[i].Percentile <= l.Curve[i-1].Percentile || l.Curve[i].Us < l.Curve[i-1].Us {
			t.Fatalf("curve not monotonic at %d: %+v", i, l.Curve[i-1:i+1])
		}
	}
	if l.HDR == "" {
		t.Fatal("no HDR encoding")
	}
}

func TestRecorderResult(t *testing.T) {
	a, b := newRecorder(true, 4), newRecorder(true, 4)
	for i := range 10 {
		recordLatency(a.latency, time.Millisecond)
		recordLatency(a.service, time.Microsecond*100)
		a.ok++
		a.steps[i%4]++
	}
	b.ok += 10
	b.steps[3] += 10
	b.status[503] = 2
	b.errs["timeout"] = 1
	a.merge(b)
	op := &Op{Name: "events", Frames: 3}
	r := a.result(op, 1000*time.Millisecond, 250*time.Millisecond)
	// Answers are the 20 successes and the two 503s; a timeout is none.
	if r.Requests != 20 || r.RPS != 20 || r.FramesPerSec != 60 || r.AnswersPerSec != 22 {
		t.Fatalf("requests %d rps %v frames/s %v answers/s %v", r.Requests, r.RPS, r.FramesPerSec, r.AnswersPerSec)
	}
	if r.Errors["HTTP 503"] != 2 || r.Errors["timeout"] != 1 || r.ErrorCount() != 3 {
		t.Fatalf("errors %v", r.Errors)
	}
	if want := []float64{12, 12, 8, 48}; !equalFloats(r.Timeline, want) {
		t.Fatalf("timeline %v, want %v", r.Timeline, want)
	}
	if r.Service == nil || r.Service.P50 > 101 {
		t.Fatalf("service %+v", r.Service)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFormat(t *testing.T) {
	for us, want := range map[float64]string{0: "-", 87.4: "87µs", 1234: "1.23ms", 2.5e6: "2.50s"} {
		if got := FormatUs(us); got != want {
			t.Errorf("FormatUs(%v) = %q, want %q", us, got, want)
		}
	}
	for x, want := range map[float64]string{999: "999", 9999: "9999", 12345.6: "12,346", 1234567: "1,234,567"} {
		if got := formatCount(x); got != want {
			t.Errorf("formatCount(%v) = %q, want %q", x, got, want)
		}
	}
	if f, err := ParseFractions("0.5, 80%"); err != nil || len(f) != 2 || f[0] != 0.5 || f[1] != 0.8 {
		t.Fatalf("ParseFractions: %v %v", f, err)
	}
	if _, err := ParseFractions("half"); err == nil {
		t.Fatal("ParseFractions accepted junk")
	}
	if n := cpuCount("0,2-3"); n != 3 {
		t.Fatalf("cpuCount = %d", n)
	}
}

// TestClosedLoopAgainstCeiling drives the ceiling server with the closed
// loop: every answer is the ceiling's body and counted, none is an error.
func TestClosedLoopAgainstCeiling(t *testing.T) {
	c := NewCeiling(nil)
	var got atomic.Value
	dial := serveInmem(t, func(ctx *fasthttp.RequestCtx) {
		c.Handler()(ctx)
		got.Store(string(ctx.Response.Body()) + "|" + string(ctx.Response.Header.ContentType()) + "|" + string(ctx.Response.Header.Peek("Vary")))
	})
	p, err := Run(context.Background(), Load{
		Name: "ceiling", Addr: "bench.test", Dial: dial, Ops: []Share{{Op: staticOp("ceiling", 200)}},
		Connections: 4, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Step: 100 * time.Millisecond,
		Watch: []Watched{{Role: "client", PID: os.Getpid()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	op := p.Op("ceiling")
	if op.Requests < 100 || op.ErrorCount() != 0 || op.Latency.Count != op.Requests {
		t.Fatalf("requests %d errors %v histogram %d", op.Requests, op.Errors, op.Latency.Count)
	}
	if len(op.Timeline) != 3 {
		t.Fatalf("timeline %v", op.Timeline)
	}
	if want := SampleDecision + "|application/json|Accept-Encoding"; got.Load() != want {
		t.Fatalf("ceiling answered %q", got.Load())
	}
	if u := p.UsageOf("client"); u == nil || u.Error != "" || u.CPU <= 0 || u.RSSMax <= 0 {
		t.Fatalf("client usage %+v", u)
	}
}

// TestErrorsByStatus counts unexpected statuses and transport errors apart
// from successes.
func TestErrorsByStatus(t *testing.T) {
	var n atomic.Int64
	dial := serveInmem(t, func(ctx *fasthttp.RequestCtx) {
		if n.Add(1)%4 == 0 {
			ctx.Error(`{"errorCode":"queue_full"}`, 503)
		}
	})
	p, err := Run(context.Background(), Load{
		Addr: "bench.test", Dial: dial, Ops: []Share{{Op: staticOp("validate", 200)}},
		Connections: 2, Duration: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	op := p.Ops[0]
	if op.Errors["HTTP 503"] == 0 || op.Requests == 0 {
		t.Fatalf("requests %d errors %v", op.Requests, op.Errors)
	}
	ratio := float64(op.Errors["HTTP 503"]) / float64(op.Requests+op.Errors["HTTP 503"])
	if ratio < 0.2 || ratio > 0.3 {
		t.Fatalf("503 share %.2f, want 0.25", ratio)
	}

	// A server that is not there: every request is a transport error.
	p, err = Run(context.Background(), Load{
		Addr: "bench.test", Dial: func(string) (net.Conn, error) { return nil, errors.New("connection refused") },
		Ops: []Share{{Op: staticOp("validate", 200)}}, Connections: 1, Duration: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if op := p.Ops[0]; op.Requests != 0 || op.Errors["connection refused"] == 0 {
		t.Fatalf("refused: %+v", op.Errors)
	}
}

// In a closed loop a 503 or 429 with Retry-After makes the worker wait that
// long before its next request, as a client should; without the header, or
// with one that is not a number of seconds, it goes on at once. An open
// loop keeps its schedule.
func TestRetryAfterIsWaitedOut(t *testing.T) {
	for _, c := range []struct {
		status     int
		header     string
		rate       float64 // an open loop's: its next slot is not held
		wantWaits  int64
		manyMore   bool // requests follow the refusal at once
		wantStatus string
	}{
		{503, "1", 0, 1, false, "HTTP 503"},
		{429, "1", 0, 1, false, "HTTP 429"},
		{503, "", 0, 0, true, "HTTP 503"},
		{503, "soon", 0, 0, true, "HTTP 503"},
		{503, "1", 1000, 0, true, "HTTP 503"},
	} {
		// One refusal, well inside the measured window.
		var refused atomic.Bool
		var after atomic.Int64 // requests after the refusal
		t0 := time.Now()
		dial := serveInmem(t, func(ctx *fasthttp.RequestCtx) {
			if refused.Load() {
				after.Add(1)
			}
			if time.Since(t0) > 50*time.Millisecond && refused.CompareAndSwap(false, true) {
				ctx.Error(`{"errorCode":"busy"}`, c.status) // resets the headers: set them after
				if c.header != "" {
					ctx.Response.Header.Set("Retry-After", c.header)
				}
			}
		})
		p, err := Run(context.Background(), Load{
			Addr: "bench.test", Dial: dial, Ops: []Share{{Op: staticOp("events", 200)}},
			Connections: 1, Rate: c.rate, Duration: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		op := p.Ops[0]
		if op.Errors[c.wantStatus] != 1 || p.RetryWaits != c.wantWaits || (after.Load() > 10) != c.manyMore {
			t.Errorf("%d Retry-After %q at rate %v: %d requests after it, errors %v, %d waits", c.status, c.header, c.rate, after.Load(), op.Errors, p.RetryWaits)
		}
	}
}

// TestMixedWeights interleaves operations by weight.
func TestMixedWeights(t *testing.T) {
	dial := serveInmem(t, func(ctx *fasthttp.RequestCtx) {})
	p, err := Run(context.Background(), Load{
		Addr: "bench.test", Dial: dial, Connections: 2, Duration: 200 * time.Millisecond,
		Ops: []Share{{Op: staticOp("validate", 200), Weight: 4}, {Op: staticOp("events", 200), Weight: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, e := p.Op("validate").Requests, p.Op("events").Requests
	if e == 0 || float64(v)/float64(e) < 3.5 || float64(v)/float64(e) > 4.5 {
		t.Fatalf("validate %d events %d: want 4 to 1", v, e)
	}
}

// TestOpenLoopCorrectsCoordinatedOmission runs an open loop against a
// server that stalls once for 300 ms. A naive generator only sees the one
// slow request (its p99 stays small); the open loop charges every request
// scheduled during the stall with the time it waited, so the corrected p99
// is of the order of the stall.
func TestOpenLoopCorrectsCoordinatedOmission(t *testing.T) {
	const stall = 300 * time.Millisecond
	var n atomic.Int64
	dial := serveInmem(t, func(ctx *fasthttp.RequestCtx) {
		if n.Add(1) == 100 {
			time.Sleep(stall)
		}
	})
	p, err := Run(context.Background(), Load{
		Addr: "bench.test", Dial: dial, Ops: []Share{{Op: staticOp("validate", 200)}},
		Connections: 1, Rate: 1000, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	op := p.Ops[0]
	if op.Service == nil {
		t.Fatal("open loop without the uncorrected histogram")
	}
	corrected, naive := op.Latency.P99, op.Service.P99
	t.Logf("requests %d, corrected p99 %s, naive p99 %s, late %d", op.Requests, FormatUs(corrected), FormatUs(naive), p.Late)
	if op.Requests < 900 || op.Requests > 1001 {
		t.Fatalf("%d requests at 1000/s for 1s", op.Requests)
	}
	if corrected < 100e3 {
		t.Fatalf("corrected p99 %s, want most of the %v stall", FormatUs(corrected), stall)
	}
	if naive*10 > corrected {
		t.Fatalf("naive p99 %s not much below corrected %s", FormatUs(naive), FormatUs(corrected))
	}
	if op.Service.Max < 250e3 {
		t.Fatalf("the stalled request itself (%s) is missing", FormatUs(op.Service.Max))
	}
	if p.Late < 100 {
		t.Fatalf("only %d late requests after a %v stall at 1000/s", p.Late, stall)
	}
}

// TestOpenLoopKeepsRate checks the schedule: a fast server receives the
// scheduled number of requests, neither more nor fewer.
func TestOpenLoopKeepsRate(t *testing.T) {
	var n atomic.Int64
	dial := serveInmem(t, func(ctx *fasthttp.RequestCtx) { n.Add(1) })
	p, err := Run(context.Background(), Load{
		Addr: "bench.test", Dial: dial, Ops: []Share{{Op: staticOp("validate", 200)}},
		Connections: 4, Rate: 500, Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 250 {
		t.Fatalf("server saw %d requests, want 250 (500/s for 0.5 s)", got)
	}
	if got := p.Ops[0].Requests; got != 200 {
		t.Fatalf("measured %d requests, want the 200 of the window", got)
	}
}

func sampleReport(t *testing.T) *Report {
	t.Helper()
	dial := serveInmem(t, NewCeiling(nil).Handler())
	r := &Report{Started: time.Unix(1763800000, 0), Scenario: "suite & <test>", Machine: DescribeMachine(),
		Settings: Settings{Connections: 2, Duration: 0.2, FramesPerPost: 3, Dim: 512}, Pinning: Pinning{Note: "test"}}
	for _, l := range []Load{
		{Name: "ceiling c=2", Connections: 2, Ops: []Share{{Op: staticOp("ceiling", 200)}}},
		{Name: "validate c=2", Connections: 2, Ops: []Share{{Op: staticOp("validate", 200)}}},
		{Name: "validate open 50%", Connections: 2, Rate: 300, Ops: []Share{{Op: staticOp("validate", 200)}}},
		{Name: "mixed", Connections: 2, Ops: []Share{{Op: staticOp("validate", 200)}, {Op: staticOp("events", 200)}}},
	} {
		l.Addr, l.Dial, l.Duration, l.Step = "bench.test", dial, 200*time.Millisecond, 50*time.Millisecond
		p, err := Run(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		r.Phases = append(r.Phases, p)
	}
	r.Phases[0].Role, r.Phases[1].Role = "ceiling", "max"
	r.Phases[2].Role, r.Phases[2].Fraction = "open", 0.5
	r.finish(1)
	return r
}

func TestReportFiles(t *testing.T) {
	r := sampleReport(t)
	if r.Headline.CeilingRPS <= 0 || r.Headline.ValidateRPS <= 0 || r.Headline.Ratio <= 0 || r.Headline.OpenP99Us["0.5"] <= 0 {
		t.Fatalf("headline %+v", r.Headline)
	}
	dir := t.TempDir()
	paths, err := r.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("paths %v", paths)
	}

	var back Report
	js, _ := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Phases) != 4 || back.Phases[3].Ops[1].Op != "events" || back.Phases[0].Ops[0].Latency.HDR == "" {
		t.Fatalf("JSON round trip lost phases: %s", js[:200])
	}

	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	for _, want := range []string{"| ceiling c=2 | closed | 2 |", "| validate open 50% | open 300/s |", "| mixed · events |", "validate / ceiling: **", "open loop at 50% of the maximum: p99"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	rows := 0
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "| ") && strings.Count(line, "|") == 17 {
			rows++
		}
	}
	if rows != 1+5 { // header + 5 op rows
		t.Errorf("%d table rows, want 6:\n%s", rows, md)
	}

	svg, _ := os.ReadFile(paths[2])
	checkSVG(t, svg, 5)
}

// checkSVG parses the SVG as XML and counts its curves.
func checkSVG(t *testing.T, svg []byte, series int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	polylines, root := 0, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root namespace %q", se.Name.Space)
				}
			}
			if se.Name.Local == "polyline" {
				polylines++
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	if polylines != 2*series {
		t.Fatalf("%d polylines, want %d (latency and throughput of %d series)", polylines, 2*series, series)
	}
}

func TestSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	r := &Report{Scenario: "empty"}
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes(), 0)
}

func TestProc(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if errors.Is(err, ErrNoProc) {
		t.Skip("no /proc")
	}
	if err != nil || s.RSS <= 0 || s.HWM < s.RSS {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ReadProc(1 << 30); !errors.Is(err, ErrNoProc) {
		t.Fatalf("missing process: %v", err)
	}
	m, err := ReadMachine()
	if err != nil || m.Busy <= 0 || len(m.Cores) == 0 {
		t.Fatalf("machine %+v %v", m, err)
	}
}

// CPU per request divides by every answer of the phase's operations, since
// the server's CPU served all of them, and says nothing when there is
// nothing to divide.
func TestFormatCPUPerRequest(t *testing.T) {
	// Refusals count: RPS (successes) is not the divisor.
	p := &Phase{Ops: []OpResult{{RPS: 5000, AnswersPerSec: 6000}, {RPS: 0, AnswersPerSec: 4000}}}
	for _, c := range []struct {
		u    *Usage
		p    *Phase
		want string
	}{
		{&Usage{CPU: 0.5}, p, "50µs"},
		{&Usage{CPU: 0.5}, &Phase{}, "-"},
		{&Usage{CPU: 0.5, Error: "gone"}, p, "-"},
		{nil, p, "-"},
	} {
		if got := formatCPUPerRequest(c.u, c.p); got != c.want {
			t.Errorf("%+v over %+v: %q, want %q", c.u, c.p.Ops, got, c.want)
		}
	}
}

// The ceiling's open-loop p99 is headlined beside validate's at the same
// fraction, and on a line of its own at a fraction validate did not run.
func TestMarkdownCeilingOpenLines(t *testing.T) {
	r := &Report{Headline: Headline{
		OpenP99Us:        map[string]float64{"0.5": 9000},
		CeilingOpenP99Us: map[string]float64{"0.5": 2000, "0.3": 1500},
	}}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	for _, want := range []string{
		"- open loop at 50% of the maximum: p99 9.00ms (from the intended send time); the ceiling at the same rate: p99 2.00ms\n",
		"- the ceiling, open loop at 30% of validate's maximum: p99 1.50ms (from the intended send time)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, b.String())
		}
	}
	if n := strings.Count(b.String(), "2.00ms"); n != 1 {
		t.Errorf("the 50%% ceiling said %d times:\n%s", n, b.String())
	}
}
