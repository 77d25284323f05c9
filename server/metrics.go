package server

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// serverMetrics are the server's Prometheus metrics. Each Server has its own
// metrics.Set (tests run many servers in one process); /metrics writes it,
// the store's statistics and the process metrics.
//
// Request counters and latency histograms are keyed by route and status.
// They are created on first use and then found by array index, so recording
// a request costs two atomic updates and no allocation.
type serverMetrics struct {
	set *metrics.Set

	mu       sync.Mutex // creating a (route, status) pair
	byStatus [numRoutes][500]atomic.Pointer[routeStatusMetrics]

	verified    *metrics.Counter
	notVerified *metrics.Counter
	processing  *metrics.Counter
	enrollments *metrics.Counter

	frameJobs       *metrics.Counter
	frameJobErrors  *metrics.Counter
	framesScored    *metrics.Counter
	queueRejections *metrics.Counter
	perIPRejections *metrics.Counter
	panics          *metrics.Counter
}

type routeStatusMetrics struct {
	requests *metrics.Counter
	latency  *metrics.Histogram
}

func newServerMetrics(s *Server) *serverMetrics {
	set := metrics.NewSet()
	m := &serverMetrics{
		set:             set,
		verified:        set.NewCounter(`countersign_decisions_total{verdict="verified"}`),
		notVerified:     set.NewCounter(`countersign_decisions_total{verdict="not_verified"}`),
		processing:      set.NewCounter(`countersign_validate_processing_total`),
		enrollments:     set.NewCounter(`countersign_enrollments_total`),
		frameJobs:       set.NewCounter(`countersign_frame_jobs_total`),
		frameJobErrors:  set.NewCounter(`countersign_frame_job_errors_total`),
		framesScored:    set.NewCounter(`countersign_frames_scored_total`),
		queueRejections: set.NewCounter(`countersign_frame_queue_rejections_total`),
		perIPRejections: set.NewCounter(`countersign_connections_rejected_total{reason="per_ip_limit"}`),
		panics:          set.NewCounter(`countersign_handler_panics_total`),
	}
	set.NewGauge(`countersign_frame_queue_depth`, func() float64 {
		if s.frames == nil {
			return 0
		}
		return float64(s.frames.depth())
	})
	set.NewGauge(`countersign_frame_queue_capacity`, func() float64 { return float64(s.cfg.QueueSize) })
	set.NewGauge(`countersign_frame_workers`, func() float64 { return float64(s.cfg.Workers) })
	set.NewGauge(`countersign_ready`, func() float64 {
		if s.Ready() {
			return 1
		}
		return 0
	})
	return m
}

// observe records one answered request.
func (m *serverMetrics) observe(r route, status int, start time.Time) {
	i := status - 100
	if i < 0 || i >= len(m.byStatus[r]) {
		i = 0
	}
	p := m.byStatus[r][i].Load()
	if p == nil {
		p = m.create(r, status, i)
	}
	p.requests.Inc()
	p.latency.UpdateDuration(start)
}

func (m *serverMetrics) create(r route, status, i int) *routeStatusMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.byStatus[r][i].Load(); p != nil {
		return p
	}
	labels := fmt.Sprintf(`{route=%q,status="%d"}`, r.String(), status)
	p := &routeStatusMetrics{
		requests: m.set.GetOrCreateCounter(`countersign_http_requests_total` + labels),
		latency:  m.set.GetOrCreateHistogram(`countersign_http_request_duration_seconds` + labels),
	}
	m.byStatus[r][i].Store(p)
	return p
}

func (m *serverMetrics) decision(verified bool) {
	if verified {
		m.verified.Inc()
	} else {
		m.notVerified.Inc()
	}
}

// serveMetrics answers /metrics in the Prometheus text format.
func (s *Server) serveMetrics(c *reqCtx) {
	c.status = 200
	c.contentType = "text/plain; version=0.0.4; charset=utf-8"
	w := &c.mw
	w.b = c.out[:0]
	s.metrics.set.WritePrometheus(w)
	s.writeStoreMetrics(w)
	metrics.WriteProcessMetrics(w)
	c.out = w.b
	w.b = nil
}

// writeStoreMetrics writes the Pebble statistics operators watch: space,
// read amplification, compaction and flush activity, memtables, WAL and
// block cache.
func (s *Server) writeStoreMetrics(w io.Writer) {
	m := s.db.Metrics()
	if m == nil {
		return
	}
	total := m.Total()
	gauge := func(name string, v float64) {
		b := make([]byte, 0, 96)
		b = append(b, name...)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		b = append(b, '\n')
		_, _ = w.Write(b)
	}
	gauge("countersign_store_disk_bytes", float64(m.DiskSpaceUsage()))
	gauge("countersign_store_read_amplification", float64(m.ReadAmp()))
	gauge("countersign_store_tables", float64(total.TablesCount))
	gauge("countersign_store_tables_bytes", float64(total.TablesSize))
	gauge("countersign_store_compactions_total", float64(m.Compact.Count))
	gauge("countersign_store_compaction_debt_bytes", float64(m.Compact.EstimatedDebt))
	gauge("countersign_store_flushes_total", float64(m.Flush.Count))
	gauge("countersign_store_memtable_bytes", float64(m.MemTable.Size))
	gauge("countersign_store_memtables", float64(m.MemTable.Count))
	gauge("countersign_store_wal_bytes", float64(m.WAL.Size))
	gauge("countersign_store_wal_written_bytes_total", float64(m.WAL.BytesWritten))
	gauge("countersign_store_block_cache_bytes", float64(m.BlockCache.Size))
	gauge("countersign_store_block_cache_hits_total", float64(m.BlockCache.Hits))
	gauge("countersign_store_block_cache_misses_total", float64(m.BlockCache.Misses))
	gauge("countersign_store_background_yields_total", float64(s.db.BackgroundYields()))
}
