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
// a request costs an atomic update, a short locked bucket update and no
// allocation.
//
// Latency is a Prometheus histogram (cumulative le buckets, _sum, _count),
// not VictoriaMetrics' vmrange one, which Prometheus and Grafana cannot
// aggregate as a histogram; and every family carries its # TYPE line, so
// a scraper reads counters as counters.
type Metrics struct {
	Set *metrics.Set

	mu       sync.Mutex // creating a (route, status) pair
	byStatus [][500]atomic.Pointer[routeStatusMetrics]

	perIPRejections *metrics.Counter
	panics          *metrics.Counter
}

type routeStatusMetrics struct {
	requests *metrics.Counter
	latency  *metrics.PrometheusHistogram
}

// latencyBuckets are the upper bounds (seconds) of the request latency
// histogram: from the tenth of a millisecond an answer from memory takes,
// through a validate that waits for a durable write, to the 10 s read and
// write timeouts.
var latencyBuckets = []float64{
	.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
}

func newMetrics() *Metrics {
	// Process-wide in the metrics package; every set this process writes
	// is countersign's, and all should say their types.
	metrics.ExposeMetadata(true)
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
		latency:  m.Set.GetOrCreatePrometheusHistogramExt(`countersign_http_request_duration_seconds`+labels, latencyBuckets),
	}
	m.byStatus[r.id][i].Store(p)
	return p
}
