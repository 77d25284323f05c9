package httpd

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics are the core's Prometheus metrics, in a metrics.Set of the
// server's own (tests run many servers in one process), on which each
// surface registers its own metrics too.
//
// Request counters and latency histograms are keyed by route and status.
// They are created on first use and then found by array index, so recording
// a request costs two atomic updates and no allocation.
type Metrics struct {
	Set *metrics.Set

	mu       sync.Mutex // creating a (route, status) pair
	byStatus [][500]atomic.Pointer[routeStatusMetrics]

	perIPRejections *metrics.Counter
	panics          *metrics.Counter
}

type routeStatusMetrics struct {
	requests *metrics.Counter
	latency  *metrics.Histogram
}

func newMetrics() *Metrics {
	set := metrics.NewSet()
	return &Metrics{
		Set:             set,
		byStatus:        make([][500]atomic.Pointer[routeStatusMetrics], len(routes)),
		perIPRejections: set.NewCounter(`countersign_connections_rejected_total{reason="per_ip_limit"}`),
		panics:          set.NewCounter(`countersign_handler_panics_total`),
	}
}

// Observe records one answered request of route r.
func (m *Metrics) Observe(r *Route, status int, start time.Time) {
	if r.id >= len(m.byStatus) { // a route registered after the server was made
		r = RouteUnknown
	}
	i := status - 100
	if i < 0 || i >= len(m.byStatus[r.id]) {
		i = 0
	}
	p := m.byStatus[r.id][i].Load()
	if p == nil {
		p = m.create(r, status, i)
	}
	p.requests.Inc()
	p.latency.UpdateDuration(start)
}

func (m *Metrics) create(r *Route, status, i int) *routeStatusMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.byStatus[r.id][i].Load(); p != nil {
		return p
	}
	labels := fmt.Sprintf(`{route=%q,status="%d"}`, r.String(), status)
	p := &routeStatusMetrics{
		requests: m.Set.GetOrCreateCounter(`countersign_http_requests_total` + labels),
		latency:  m.Set.GetOrCreateHistogram(`countersign_http_request_duration_seconds` + labels),
	}
	m.byStatus[r.id][i].Store(p)
	return p
}
