package server

import (
	"io"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
)

// The service routes: probes, metrics and the API document, outside every
// surface's prefix. Their errors are in the default envelope.
var (
	routeHealthz = httpd.NewRoute(httpd.Route{Name: "healthz"})
	routeReadyz  = httpd.NewRoute(httpd.Route{Name: "readyz"})
	routeMetrics = httpd.NewRoute(httpd.Route{Name: "metrics"})
	routeOpenAPI = httpd.NewRoute(httpd.Route{Name: "openapi"})
)

// service serves the service routes, and answers route_not_found for every
// path no surface owns.
type service struct {
	s    *Server
	pool sync.Pool // *httpd.Ctx
}

func (v *service) init(s *Server) {
	v.s = s
	v.pool.New = func() any { return new(httpd.Ctx) }
	s.core.Metrics().Set.NewGauge(`countersign_ready`, func() float64 {
		if s.Ready() {
			return 1
		}
		return 0
	})
}

// Route maps a path to its service route, or httpd.RouteUnknown.
func (v *service) Route(path []byte) (*httpd.Route, []byte) {
	switch string(path) {
	case "/healthz":
		return routeHealthz, nil
	case "/readyz":
		return routeReadyz, nil
	case "/metrics":
		return routeMetrics, nil
	case "/openapi.json":
		return routeOpenAPI, nil
	}
	return httpd.RouteUnknown, nil
}

// Serve answers one request of a service route in a pooled context.
func (v *service) Serve(rc *fasthttp.RequestCtx, r *httpd.Route, _ []byte) {
	c := v.pool.Get().(*httpd.Ctx)
	c.Start(v.s.core, rc, r)
	if c.Admit() {
		switch r {
		case routeHealthz:
			c.Status = fasthttp.StatusOK
			c.Out = append(c.Out, `{"status":"ok"}`...)
		case routeReadyz:
			if v.s.Ready() {
				c.Status = fasthttp.StatusOK
				c.Out = append(c.Out, `{"status":"ready"}`...)
			} else {
				c.Fail(httpd.ErrNotReady, nil)
			}
		case routeMetrics:
			v.s.serveMetrics(c)
		case routeOpenAPI:
			c.Status = fasthttp.StatusOK
			c.Out = append(c.Out, openAPIDocument()...)
		}
	}
	c.Send()
	c.Release()
	v.pool.Put(c)
}

// serveMetrics answers /metrics in the Prometheus text format: the server's
// metrics (the core's and every surface's), the store's statistics and the
// process metrics.
func (s *Server) serveMetrics(c *httpd.Ctx) {
	c.Status = 200
	c.ContentType = "text/plain; version=0.0.4; charset=utf-8"
	c.AppendFrom(func(w io.Writer) {
		s.core.Metrics().Set.WritePrometheus(w)
		s.writeStoreMetrics(w)
		metrics.WriteProcessMetrics(w)
	})
}

// writeStoreMetrics writes the store statistics operators watch: space,
// read amplification, compaction and flush activity, memtables, WAL and
// block cache. The figures that only grow are counters (*_total), so that
// rate() and increase() apply; the rest are gauges.
func (s *Server) writeStoreMetrics(w io.Writer) {
	st, ok := s.db.Stats()
	if !ok {
		return
	}
	gauge := func(name string, v uint64) { metrics.WriteGaugeUint64(w, name, v) }
	counter := func(name string, v uint64) { metrics.WriteCounterUint64(w, name, v) }
	gauge("countersign_store_disk_bytes", st.DiskBytes)
	gauge("countersign_store_read_amplification", st.ReadAmplification)
	gauge("countersign_store_tables", st.Tables)
	gauge("countersign_store_tables_bytes", st.TableBytes)
	counter("countersign_store_compactions_total", st.Compactions)
	gauge("countersign_store_compaction_debt_bytes", st.CompactionDebt)
	counter("countersign_store_flushes_total", st.Flushes)
	gauge("countersign_store_memtable_bytes", st.MemtableBytes)
	gauge("countersign_store_memtables", st.Memtables)
	gauge("countersign_store_wal_bytes", st.WALBytes)
	counter("countersign_store_wal_written_bytes_total", st.WALWrittenBytes)
	gauge("countersign_store_block_cache_bytes", st.BlockCacheBytes)
	counter("countersign_store_block_cache_hits_total", st.BlockCacheHits)
	counter("countersign_store_block_cache_misses_total", st.BlockCacheMisses)
	counter("countersign_store_background_yields_total", st.BackgroundYields)
	counter("countersign_store_damaged_frames_total", st.DamagedFrames)
	counter("countersign_store_swept_approvals_total", st.SweptApprovals)
	counter("countersign_store_swept_activation_codes_total", st.SweptActivationCodes)
}
