package server

import (
	"bytes"
	"math"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// TestMetricsPrometheusTypes: /metrics parses with Prometheus' own text
// parser, request latency is a histogram of cumulative le buckets (not
// VictoriaMetrics' vmrange), and the figures that only grow, the server's
// and the store's, are counters.
func TestMetricsPrometheusTypes(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.do(req{path: "/healthz"})
	}
	e.do(req{path: "/nope"})
	s := e.newSession("metrics-0001", "u1")
	if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Final: true})); r.status != 202 {
		t.Fatal(r)
	}
	if r := e.validate(e.validateBody(s, false, seedItems()...)); r.status != 200 {
		t.Fatal(r)
	}
	body := e.do(req{path: "/metrics"}).body
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v\n%s", err, body)
	}

	lat := families["countersign_http_request_duration_seconds"]
	if lat == nil || lat.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("request latency is not a histogram: %v", lat)
	}
	var healthz *dto.Histogram
	for _, m := range lat.Metric {
		if label(m, "route") == "healthz" && label(m, "status") == "200" {
			healthz = m.Histogram
		}
	}
	if healthz == nil {
		t.Fatalf("no latency of healthz 200: %v", lat)
	}
	// Cumulative le buckets from 0.1 ms to 10 s, then +Inf holding every
	// sample.
	wantBounds := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}
	var bounds []float64
	for i, b := range healthz.Bucket {
		bounds = append(bounds, b.GetUpperBound())
		if i > 0 && b.GetCumulativeCount() < healthz.Bucket[i-1].GetCumulativeCount() {
			t.Errorf("buckets not cumulative: %v", healthz.Bucket)
		}
	}
	if !slices.Equal(bounds, wantBounds) {
		t.Errorf("latency buckets %v, want %v", bounds, wantBounds)
	}
	if n := len(healthz.Bucket); healthz.GetSampleCount() != 3 || n == 0 || healthz.Bucket[n-1].GetCumulativeCount() != 3 {
		t.Errorf("healthz latency: %d samples, buckets %v; want 3 in +Inf", healthz.GetSampleCount(), healthz.Bucket)
	}

	for name, want := range map[string]float64{
		"countersign_http_requests_total":            -1,
		"countersign_decisions_total":                -1,
		"countersign_enrollments_total":              0,
		"countersign_store_compactions_total":        -1,
		"countersign_store_flushes_total":            -1,
		"countersign_store_wal_written_bytes_total":  -1,
		"countersign_store_block_cache_hits_total":   -1,
		"countersign_store_block_cache_misses_total": -1,
		"countersign_store_background_yields_total":  0,
	} {
		f := families[name]
		if f == nil || f.GetType() != dto.MetricType_COUNTER || len(f.Metric) == 0 {
			t.Errorf("%s is not a counter: %v", name, f)
			continue
		}
		if got := f.Metric[0].GetCounter().GetValue(); want >= 0 && got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if f := families["countersign_store_wal_written_bytes_total"]; f != nil && f.Metric[0].GetCounter().GetValue() == 0 {
		t.Error("the WAL counter did not count the session's writes")
	}
	for _, name := range []string{"countersign_store_disk_bytes", "countersign_store_read_amplification", "countersign_frame_queue_depth"} {
		if f := families[name]; f == nil || f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is not a gauge: %v", name, f)
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
