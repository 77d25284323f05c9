package native

import (
	"context"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// frameJob asks a worker to fold a session's unscored frames. It names the
// session only: the worker reads the frames from the store, so a job is
// small, and several jobs of one session collapse into whatever the first
// finds unscored.
type frameJob struct {
	org  store.OrgID // a comparable value, so the job keys the inflight map as it is
	csid string      // an owned copy: a job outlives its request
}

// FramePool is the bounded frame-scoring worker pool.
//
// Capacity is reserved before an events request stores anything (reserve),
// so a full queue is answered 503 without storing, and a stored batch always
// has a place in the queue (enqueue never blocks). Jobs are sharded by a hash
// of (org, csid), so one worker folds all of a session's frames, in arrival
// order, and no two workers write one session's aggregate. The bound is on
// the pool as a whole (one shard may hold every job), so each worker's queue
// is a slice that grows with what it holds rather than a channel sized for
// the worst case.
type FramePool struct {
	srv      *Surface
	queues   []*jobQueue
	capacity int64
	queued   atomic.Int64 // reserved, queued or being processed
	seed     maphash.Seed

	paused atomic.Bool // Pause: events posts do not score inline either

	mu       sync.Mutex // guards inflight and closed
	inflight map[frameJob]int
	closed   bool
	wg       sync.WaitGroup
}

// jobQueue is one worker's FIFO.
type jobQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	jobs   []frameJob
	head   int
	closed bool
	paused bool // Pause: jobs are queued and counted but not taken
}

func (q *jobQueue) push(j frameJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop waits for a job; false once the queue is closed and empty.
func (q *jobQueue) pop() (frameJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for (q.head == len(q.jobs) || q.paused) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.jobs) {
		return frameJob{}, false
	}
	j := q.jobs[q.head]
	q.jobs[q.head] = frameJob{}
	q.head++
	if q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	}
	return j, true
}

func (q *jobQueue) setPaused(paused bool) {
	q.mu.Lock()
	q.paused = paused
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

func newFramePool(s *Surface, workers, capacity int) *FramePool {
	p := &FramePool{
		srv:      s,
		queues:   make([]*jobQueue, workers),
		capacity: int64(capacity),
		seed:     maphash.MakeSeed(),
		inflight: make(map[frameJob]int),
	}
	for i := range p.queues {
		q := &jobQueue{}
		q.cond.L = &q.mu
		p.queues[i] = q
		w := &frameWorker{pool: p, agg: biometric.NewAggregate(s.dim)}
		p.wg.Add(1)
		go w.run(q)
	}
	return p
}

// Pause stops the workers from taking jobs (a job being scored finishes)
// and events posts from scoring their frames inline: events are still
// stored, queued and counted, so their frames stay unscored and validate
// answers processing until Resume. The HTTP transcripts use it to pin the
// processing answer; Shutdown still drains a paused pool.
func (p *FramePool) Pause() {
	p.paused.Store(true)
	for _, q := range p.queues {
		q.setPaused(true)
	}
}

// Resume lets the workers take jobs again.
func (p *FramePool) Resume() {
	p.paused.Store(false)
	for _, q := range p.queues {
		q.setPaused(false)
	}
}

// Capacity is the number of places in the queue.
func (p *FramePool) Capacity() int64 { return p.capacity }

// Depth is the number of jobs reserved, queued or being processed.
func (p *FramePool) Depth() int64 { return p.queued.Load() }

// reserve takes one place in the queue, or reports that it is full.
func (p *FramePool) Reserve() bool {
	if !p.tryReserve() {
		p.srv.metrics.queueRejections.Inc()
		return false
	}
	return true
}

// tryReserve is reserve for a caller that decides itself whether a full
// queue is a rejection (and counts it: the metric counts refusals).
func (p *FramePool) tryReserve() bool {
	for {
		n := p.queued.Load()
		if n >= p.capacity {
			return false
		}
		if p.queued.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// unreserve gives back a place that will not be used.
func (p *FramePool) Unreserve() { p.queued.Add(-1) }

// enqueue queues a job in a reserved place. csid is copied.
func (p *FramePool) enqueue(org store.OrgID, csid string) {
	job := frameJob{org: org, csid: strings.Clone(csid)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.Unreserve()
		return
	}
	p.inflight[job]++
	p.queues[p.shard(job)].push(job)
	p.mu.Unlock()
}

// busy reports whether a job of the session is queued or running.
func (p *FramePool) busy(org store.OrgID, csid string) bool {
	p.mu.Lock()
	n := p.inflight[frameJob{org, csid}]
	p.mu.Unlock()
	return n > 0
}

// catchUp queues a job for a session whose frames are unscored with no job in
// flight (after a restart, or a job that failed), if the queue has room.
func (p *FramePool) catchUp(org store.OrgID, csid string) {
	if p.busy(org, csid) || !p.Reserve() {
		return
	}
	p.enqueue(org, csid)
}

func (p *FramePool) shard(j frameJob) int {
	var h maphash.Hash
	h.SetSeed(p.seed)
	_, _ = h.Write(j.org[:]) // fixed width: no separator needed
	h.WriteString(j.csid)
	return int(h.Sum64() % uint64(len(p.queues)))
}

func (p *FramePool) done(j frameJob) {
	p.mu.Lock()
	if n := p.inflight[j] - 1; n > 0 {
		p.inflight[j] = n
	} else {
		delete(p.inflight, j)
	}
	p.mu.Unlock()
	p.queued.Add(-1)
}

// retryAfterMS estimates when a session's pending frames will be scored, from
// the queue depth per worker: 10 ms with an idle queue, at most a second.
func (p *FramePool) retryAfterMS() int {
	ms := 10 + int(p.Depth())*20/len(p.queues)
	return min(max(ms, 10), 1000)
}

// stop closes the queues and waits until the workers have processed every
// queued job, or ctx ends.
func (p *FramePool) stop(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, q := range p.queues {
			q.close()
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// frameWorker folds sessions' frames. Its scratch (aggregate, template,
// frame, scorers) is its own, so folding does not allocate in steady state.
type frameWorker struct {
	pool    *FramePool
	agg     *biometric.Aggregate
	tmpl    biometric.Template
	frame   biometric.Frame
	sess    store.Session
	buf     []byte
	scorers map[store.OrgID]*biometric.Scorer // replaced when thresholds change
}

func (w *frameWorker) run(q *jobQueue) {
	defer w.pool.wg.Done()
	for {
		job, ok := q.pop()
		if !ok {
			return
		}
		w.process(job)
		w.pool.done(job)
	}
}

func (w *frameWorker) scorer(e *tenant.Org) *biometric.Scorer {
	if w.scorers == nil {
		w.scorers = make(map[store.OrgID]*biometric.Scorer)
	}
	sc := w.scorers[e.ID]
	if sc == nil || sc.Thresholds() != e.Thresholds {
		sc = biometric.NewScorer(e.Thresholds, e.Dim)
		w.scorers[e.ID] = sc
	}
	return sc
}

// process folds the session's unscored frames into its aggregate and saves
// it. A job for a session that is gone, expired or already scored does
// nothing. Errors are logged and counted; the frames stay unscored, and the
// next validate of the session queues a catch-up job.
func (w *frameWorker) process(job frameJob) {
	s := w.pool.srv
	defer func() {
		if p := recover(); p != nil {
			if httpd.StoreFatal(p) {
				s.core.MarkStoreDead(p) // logged there, once
				return
			}
			s.metrics.frameJobErrors.Inc()
			s.log.Error("frame job panic", "org", job.org.String(), "csid", job.csid, "panic", p)
		}
	}()
	if s.core.StoreDead() {
		return // the frames stay unscored; a restart scores them
	}
	s.metrics.frameJobs.Inc()
	if err := s.db.SessionInto(job.org, job.csid, &w.sess); err != nil {
		if errors.Is(err, store.ErrFatal) {
			s.core.MarkStoreDead(err)
			return
		}
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExpired) {
			s.metrics.frameJobErrors.Inc()
			s.log.Error("frame job: read session", "org", job.org.String(), "csid", job.csid, "err", err)
		}
		return
	}
	if w.sess.FramesScored >= w.sess.FramesReceived {
		return
	}
	e, err := s.orgs.ByID(job.org)
	if err != nil {
		s.jobStoreError("frame job: organization", err, "org", job.org.String())
		return
	}
	tmpl, err := loadTemplate(s.db, job.org, w.sess.UserID, &w.tmpl)
	if err != nil {
		s.jobStoreError("frame job: template", err, "org", job.org.String(), "user", w.sess.UserID)
		return
	}
	from := w.sess.FramesScored
	if len(w.sess.Aggregate) == 0 || w.agg.Decode(w.sess.Aggregate) != nil {
		w.agg.Reset(s.dim)
		from = 0
	}
	if from > 0 && w.agg.TemplateVersion() != templateVersion(tmpl) {
		// The template changed since these frames were scored: rescore all.
		w.agg.Reset(s.dim)
		from = 0
	}
	n, err := s.foldStored(w.scorer(e), job.org, job.csid, from, w.agg, tmpl, &w.frame)
	if err != nil {
		s.jobStoreError("frame job: read frames", err, "org", job.org.String(), "csid", job.csid)
		return
	}
	w.buf = w.agg.AppendBinary(w.buf[:0])
	switch err := s.db.SaveAggregate(job.org, job.csid, w.buf, n); {
	case err == nil:
		s.metrics.framesScored.Add(int(n - from))
	case errors.Is(err, store.ErrStale), errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrNotFound):
		// A validate saved a newer fold (enrollment rescore), or the session ended.
	default:
		s.jobStoreError("frame job: save aggregate", err, "org", job.org.String(), "csid", job.csid)
	}
}

// jobStoreError counts and logs a frame job's error, except a failed
// store's: that is one state change, which MarkStoreDead logs once, however
// many queued jobs meet it (a full queue holds thousands).
func (s *Surface) jobStoreError(msg string, err error, args ...any) {
	if errors.Is(err, store.ErrFatal) {
		s.core.MarkStoreDead(err)
		return
	}
	s.metrics.frameJobErrors.Inc()
	s.log.Error(msg, append(args, "err", err)...)
}

// foldStored folds the session's stored frames from index from on into agg,
// and returns the number of frames the aggregate then covers. A stored frame
// that does not decompress or decode (it was validated before it was stored,
// so this is damage) is logged and counted as an unverified face frame
// (FoldUnreadable), so one bad record can neither hold a session in
// "processing" forever nor raise its verified ratio. It is the one fold of
// stored frames: the workers' (from the first unscored frame) and
// validate's rescoring (from 0) alike, so both count damage the same way.
func (s *Surface) foldStored(sc *biometric.Scorer, org store.OrgID, csid string, from uint32, agg *biometric.Aggregate, tmpl *biometric.Template, f *biometric.Frame) (uint32, error) {
	n := from
	err := s.db.Frames(org, csid, from, func(index uint32, raw []byte) error {
		if raw == nil {
			sc.FoldUnreadable(agg) // damaged in the store, which logged it
		} else if err := biometric.DecodeFrame(raw, f); err != nil {
			s.log.Error("stored frame does not decode", "org", org.String(), "csid", csid, "index", index, "err", err)
			sc.FoldUnreadable(agg)
		} else {
			sc.Fold(agg, f, tmpl)
		}
		n = index + 1
		return nil
	})
	return n, err
}

// loadTemplate reads and decodes the user's template into dst, returning nil
// (and no error) when the user has none.
func loadTemplate(db *store.DB, org store.OrgID, userID string, dst *biometric.Template) (*biometric.Template, error) {
	raw, err := db.Template(org, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := dst.Decode(raw); err != nil {
		return nil, err
	}
	return dst, nil
}

func templateVersion(t *biometric.Template) uint64 {
	if t == nil {
		return 0
	}
	return t.Version
}
