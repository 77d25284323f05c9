package bench

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// A transaction is a fintech backend's whole unit of work, as the SDK and
// the backend drive it: POST /v1/sessions, TxnPosts gzip events posts of
// FramesPerPost frames (the form values in the first, the last final),
// then POST /v1/validate, sent again after the answer's retryAfterMS while
// it answers 202 processing.
const TxnPosts = 4

// Request kinds of a transaction, as its phase's Ops name them.
const (
	TxnOpSession     = "session"
	TxnOpEvents      = "events"
	TxnOpValidate    = "validate"
	TxnOpTransaction = "transaction"
)

// TxnScript is the requests of the transaction scenario, built once so the
// generator spends its CPU sending, not encoding: per enrolled user a few
// sets of TxnPosts gzip bodies of that user's genuine frames (new sessions
// reuse them; seqs start at 1 in each session), cycled.
type TxnScript struct {
	CID, APIKey string
	Users       []string
	// Bodies[u][k] are the TxnPosts bodies of the k-th set of user u.
	Bodies [][][][]byte
	// FramesPerPost is the number of frames in each post.
	FramesPerPost int
	// RunID prefixes the sessions' csids, unique per run.
	RunID string
}

// NewTxnScript builds sets bodies per user of FramesPerPost-frame posts.
func NewTxnScript(cid, apiKey, runID string, users []string, sets, framesPerPost, dim int, seed uint64) (*TxnScript, error) {
	if len(users) == 0 {
		return nil, errors.New("bench: a transaction needs an enrolled user")
	}
	s := &TxnScript{CID: cid, APIKey: apiKey, Users: users, FramesPerPost: framesPerPost, RunID: runID}
	faces := simulate.NewFaces(dim, seed^0x7a11)
	ts0 := time.Now().UnixMilli()
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.DefaultCompression)
	for _, user := range users {
		id := faces.Identity(simulate.IdentitySeed(user))
		var perUser [][][]byte
		for range sets {
			var posts [][]byte
			seq := uint64(0)
			for p := range TxnPosts {
				ev := client.Events{Frames: make([]client.Frame, framesPerPost), Final: p == TxnPosts-1}
				if p == 0 {
					ev.Fields = simulate.SeedFields(ts0)
				}
				for j := range ev.Frames {
					seq++
					ev.Frames[j] = faces.LiveFrame(id, seq, ts0, 1)
				}
				body, err := gzipEvents(zw, &zb, &ev)
				if err != nil {
					return nil, err
				}
				posts = append(posts, body)
			}
			perUser = append(perUser, posts)
		}
		s.Bodies = append(s.Bodies, perUser)
	}
	return s, nil
}

// TxnLoad is one closed-loop phase of transactions: each of Connections
// workers plays transactions back to back on its own connection.
type TxnLoad struct {
	Name        string
	Addr        string
	Script      *TxnScript
	Connections int
	Duration    time.Duration
	Warmup      time.Duration
	Step        time.Duration // timeline resolution; 0 means 250 ms
	Timeout     time.Duration // one request; 0 means 10 s
	Watch       []Watched
	// DataDir, when set, is the server's data directory, whose size is
	// sampled once a minute (TxnResult.DiskBytes).
	DataDir string
}

// TxnResult is what a transaction phase measured beyond its per-kind Ops.
type TxnResult struct {
	// PerSec is the transactions completed (validate answered 200) per
	// second of the window, FramesPerSec their frames.
	PerSec       float64 `json:"perSec"`
	FramesPerSec float64 `json:"framesPerSec"`
	// Validates is the transactions whose validate was answered in the
	// window; Processing how many of them were first answered 202, and
	// Retries the 202 answers in all.
	Validates  int64 `json:"validates"`
	Processing int64 `json:"processing"`
	Retries    int64 `json:"retries"`
	// Waits is, for the validates first answered 202, the time from their
	// first send to the final answer.
	Waits Latency `json:"waits"`
	// PerMinute is the transactions per second in each whole minute of a
	// window of two minutes or more (a decline with store size shows here).
	PerMinute []float64 `json:"perMinute,omitempty"`
	// DiskBytes is the size of the server's data directory at the start
	// of the window and at the end of each minute.
	DiskBytes []int64 `json:"diskBytes,omitempty"`
}

// ProcessingShare is the share of validates first answered 202.
func (t *TxnResult) ProcessingShare() float64 {
	if t.Validates == 0 {
		return 0
	}
	return float64(t.Processing) / float64(t.Validates)
}

// txnWorker is one connection playing transactions.
type txnWorker struct {
	l      *TxnLoad
	hc     *fasthttp.HostClient
	req    *fasthttp.Request
	resp   *fasthttp.Response
	rec    [4]*recorder // session, events, validate, transaction
	waits  *hdrhistogram.Histogram
	last   int // status of the last answer, 0 after a transport error
	uri    []byte
	csid   []byte
	body   []byte
	token  []byte
	vreq   client.ValidateRequest
	valids int64
	procs  int64
	retrs  int64
}

var txnOps = [4]string{TxnOpSession, TxnOpEvents, TxnOpValidate, TxnOpTransaction}

// RunTransactions measures l: transactions per second, each request kind's
// and each transaction's latency, and the validates that waited.
func RunTransactions(ctx context.Context, l TxnLoad) (*Phase, error) {
	if l.Script == nil || len(l.Script.Users) == 0 {
		return nil, errors.New("bench: a transaction load needs a script")
	}
	if err := phaseDefaults(&l.Connections, &l.Step, &l.Timeout, l.Duration); err != nil {
		return nil, err
	}
	steps := int((l.Duration + l.Step - 1) / l.Step)
	start := time.Now().Add(10 * time.Millisecond)
	measure := start.Add(l.Warmup)
	end := measure.Add(l.Duration)
	workers := make([]*txnWorker, l.Connections)
	for i := range workers {
		w := &txnWorker{
			l: &l,
			hc: &fasthttp.HostClient{
				Addr: l.Addr, MaxConns: 1, ReadTimeout: l.Timeout, WriteTimeout: l.Timeout,
				MaxIdemponentCallAttempts: 1, NoDefaultUserAgentHeader: true,
				DisablePathNormalizing: true, MaxIdleConnDuration: time.Minute,
			},
			req: &fasthttp.Request{}, resp: &fasthttp.Response{},
			waits: newHistogram(),
		}
		for k := range w.rec {
			w.rec[k] = newRecorder(false, steps)
		}
		workers[i] = w
	}
	var disk diskSampler
	if l.DataDir != "" {
		disk.start(ctx, l.DataDir, measure, end)
	}
	mon := startMonitor(l.Watch, measure, end, l.Step)
	var wg sync.WaitGroup
	var seq atomic.Uint64
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, &seq, measure, end)
		}()
	}
	wg.Wait()
	usage := mon.stop()
	ph := &Phase{
		Name: l.Name, Role: "transaction", Loop: "closed", Connections: l.Connections,
		Duration: l.Duration.Seconds(), Warmup: l.Warmup.Seconds(), Step: l.Step.Seconds(), Usage: usage,
	}
	measured := l.Duration
	if ctx.Err() != nil {
		measured = max(time.Since(measure), 0)
	}
	t := &TxnResult{}
	waits := newHistogram()
	for k, name := range txnOps {
		total := newRecorder(false, steps)
		for _, w := range workers {
			total.merge(w.rec[k])
		}
		op := &Op{Name: name}
		if name == TxnOpTransaction {
			op.Frames = TxnPosts * l.Script.FramesPerPost
		}
		if name == TxnOpEvents {
			op.Frames = l.Script.FramesPerPost
		}
		res := total.result(op, measured, l.Step)
		if name == TxnOpTransaction {
			res.AnswersPerSec = 0 // its requests are the other kinds' answers
		}
		ph.Ops = append(ph.Ops, res)
	}
	for _, w := range workers {
		waits.Merge(w.waits)
		t.Validates += w.valids
		t.Processing += w.procs
		t.Retries += w.retrs
		w.hc.CloseIdleConnections()
	}
	t.Waits = summarize(waits)
	t.Waits.Curve, t.Waits.HDR = nil, ""
	if txn := ph.Op(TxnOpTransaction); txn != nil {
		t.PerSec, t.FramesPerSec = txn.RPS, txn.FramesPerSec
		t.PerMinute = perMinute(txn.Timeline, l.Step)
	}
	t.DiskBytes = disk.stop()
	ph.Transactions = t
	return ph, ctx.Err()
}

// perMinute averages a timeline into whole minutes, for windows of at
// least two; nil otherwise.
func perMinute(timeline []float64, step time.Duration) []float64 {
	per := int(time.Minute / step)
	if per <= 0 || len(timeline) < 2*per {
		return nil
	}
	var out []float64
	for i := 0; i+per <= len(timeline); i += per {
		var sum float64
		for _, v := range timeline[i : i+per] {
			sum += v
		}
		out = append(out, sum/float64(per))
	}
	return out
}

func (w *txnWorker) run(ctx context.Context, seq *atomic.Uint64, measure, end time.Time) {
	s := w.l.Script
	for ctx.Err() == nil {
		begin := time.Now()
		if !begin.Before(end) {
			return
		}
		n := seq.Add(1) - 1
		u := int(n % uint64(len(s.Users)))
		set := s.Bodies[u][int(n/uint64(len(s.Users)))%len(s.Bodies[u])]
		counted := !begin.Before(measure)
		ok := w.transaction(ctx, n, s.Users[u], set, counted, end)
		if counted && ok {
			done := time.Now()
			rec := w.rec[3]
			recordLatency(rec.latency, done.Sub(begin))
			rec.ok++
			if st := int(done.Sub(measure) / w.l.Step); st >= 0 && st < len(rec.steps) {
				rec.steps[st]++
			}
		}
	}
}

// transaction plays one transaction; false when a request of it failed
// (counted under its kind).
func (w *txnWorker) transaction(ctx context.Context, n uint64, user string, posts [][]byte, counted bool, end time.Time) bool {
	s := w.l.Script
	req := w.req
	w.csid = append(w.csid[:0], s.RunID...)
	w.csid = append(w.csid, "-t"...)
	w.csid = strconv.AppendUint(w.csid, n, 10)

	// POST /v1/sessions
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://" + w.l.Addr + "/v1/sessions")
	req.Header.SetContentType("application/json")
	req.Header.Set("x-client-id", s.CID)
	w.body = append(w.body[:0], `{"csid":"`...)
	w.body = append(w.body, w.csid...)
	w.body = append(w.body, `","userID":"`...)
	w.body = append(w.body, user...)
	w.body = append(w.body, `","action":"transfer"}`...)
	req.SetBodyRaw(w.body)
	if w.send(0, counted) != fasthttp.StatusCreated {
		return w.failed(0, counted)
	}
	tok, found := jsonStringField(w.resp.Body(), "collectToken")
	if !found {
		if counted {
			w.rec[0].errs["answer without collectToken"]++
		}
		return false
	}
	w.ok(0, counted)
	w.token = append(w.token[:0], tok...)

	// The events posts.
	w.uri = append(w.uri[:0], "http://"...)
	w.uri = append(w.uri, w.l.Addr...)
	w.uri = append(w.uri, "/v1/sessions/"...)
	w.uri = append(w.uri, w.csid...)
	w.uri = append(w.uri, "/events"...)
	for _, body := range posts {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURIBytes(w.uri)
		req.Header.SetContentType("application/json")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("x-client-id", s.CID)
		req.Header.SetBytesV("x-collect-token", w.token)
		req.SetBodyRaw(body)
		if w.send(1, counted) != fasthttp.StatusAccepted {
			return w.failed(1, counted)
		}
		w.ok(1, counted)
	}

	// POST /v1/validate, again while it answers 202.
	w.vreq = client.ValidateRequest{CSID: string(w.csid), UserID: user, Action: "transfer", SessionData: seedItems}
	w.body = w.vreq.AppendJSON(w.body[:0], s.CID)
	first := time.Now()
	waited := false
	for {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("http://" + w.l.Addr + "/v1/validate")
		req.Header.SetContentType("application/json")
		req.Header.Set("apikey", s.APIKey)
		req.SetBodyRaw(w.body)
		switch w.send(2, counted) {
		case fasthttp.StatusOK:
			w.ok(2, counted)
		case fasthttp.StatusAccepted:
			// processing: the protocol, not an error; counted as a wait.
			if counted {
				w.retrs++
			}
			waited = true
			ms, _ := jsonIntField(w.resp.Body(), "retryAfterMS")
			d := time.Duration(min(max(ms, 1), 1000)) * time.Millisecond
			if time.Now().Add(d).After(end.Add(w.l.Timeout)) || !sleepCtx(ctx, d) {
				return false
			}
			continue
		default:
			return w.failed(2, counted)
		}
		break
	}
	if counted {
		w.valids++
		if waited {
			w.procs++
			recordLatency(w.waits, time.Since(first))
		}
	}
	return true
}

// seedItems is the validate's sessionData: what the first post's fields
// must match.
var seedItems = simulate.SeedSessionData()

// send sends w.req and records its latency under kind k; it returns the
// answer's status, 0 on a transport error (counted under k's errors).
func (w *txnWorker) send(k int, counted bool) int {
	w.resp.Reset()
	sent := time.Now()
	err := w.hc.Do(w.req, w.resp)
	done := time.Now()
	rec := w.rec[k]
	if err != nil {
		if counted {
			rec.errs[errorKind(err)]++
		}
		backoff(err)
		w.last = 0
		return 0
	}
	if counted {
		recordLatency(rec.latency, done.Sub(sent))
	}
	w.last = w.resp.StatusCode()
	return w.last
}

// ok counts an expected answer of kind k.
func (w *txnWorker) ok(k int, counted bool) {
	if counted {
		w.rec[k].ok++
	}
}

// failed counts an unexpected answer of kind k (a transport error is
// counted already), waits out its Retry-After (at most a second) as a
// client would, and returns false: the transaction is abandoned.
func (w *txnWorker) failed(k int, counted bool) bool {
	code := w.last
	if code == 0 {
		return false
	}
	if counted {
		w.rec[k].status[code]++
	}
	if d := retryAfter(w.resp); d > 0 {
		sleepCtx(context.Background(), min(d, time.Second))
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jsonStringField finds "name":"value" in a flat JSON answer and returns
// value (no escapes expected: tokens and ids are plain ASCII).
func jsonStringField(body []byte, name string) ([]byte, bool) {
	i := bytes.Index(body, []byte(`"`+name+`":"`))
	if i < 0 {
		return nil, false
	}
	rest := body[i+len(name)+4:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// jsonIntField finds "name":N in a flat JSON answer.
func jsonIntField(body []byte, name string) (int, bool) {
	i := bytes.Index(body, []byte(`"`+name+`":`))
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(name)+3:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.Atoi(string(rest[:j]))
	return v, err == nil
}

// diskSampler records the size of a directory tree at the start of a
// window and at the end of each minute of it.
type diskSampler struct {
	mu    sync.Mutex
	sizes []int64
	done  chan struct{}
	wg    sync.WaitGroup
}

func (d *diskSampler) start(ctx context.Context, dir string, from, to time.Time) {
	d.done = make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		next := from
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.done:
				return
			case <-time.After(time.Until(next)):
			}
			d.mu.Lock()
			d.sizes = append(d.sizes, dirSize(dir))
			d.mu.Unlock()
			next = next.Add(time.Minute)
			if next.After(to.Add(time.Second)) {
				return
			}
		}
	}()
}

func (d *diskSampler) stop() []int64 {
	if d.done == nil {
		return nil
	}
	close(d.done)
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sizes
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}
