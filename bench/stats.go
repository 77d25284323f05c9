package bench

import (
	"encoding/base64"
	"math"
	"sort"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms record nanoseconds from 100 ns to 100 s with three
// significant digits: a 60 µs service time is resolved to 64 ns, a 2 s stall
// to 2 ms, and one histogram is about 170 KB, so every worker can keep its own
// (HdrHistogram is not safe for concurrent use) and they are merged at the end.
const (
	histLowest  = 100
	histHighest = int64(100 * time.Second)
	histSigFigs = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histSigFigs)
}

// recordLatency records d, clamped into the histogram's range so that a
// pathological value is counted at the edge instead of being dropped.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	v := int64(d)
	if v < histLowest {
		v = histLowest
	}
	if v > histHighest {
		v = histHighest
	}
	_ = h.RecordValue(v) // in range by construction
}

// Latency summarises one histogram in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"meanUs"`
	P50   float64 `json:"p50Us"`
	P90   float64 `json:"p90Us"`
	P99   float64 `json:"p99Us"`
	P999  float64 `json:"p999Us"`
	Max   float64 `json:"maxUs"`
	// Curve is the percentile distribution, for plots: the latency at
	// percentiles spaced evenly on a log scale of 1/(1-p), up to the
	// percentile the sample count supports, then the maximum.
	Curve []CurvePoint `json:"curve,omitempty"`
	// HDR is the histogram itself in HdrHistogram's compressed V2 encoding
	// (base64, nanoseconds), so the distribution can be re-analysed with any
	// HdrHistogram tool.
	HDR string `json:"hdr,omitempty"`
}

// CurvePoint is one point of a percentile distribution.
type CurvePoint struct {
	Percentile float64 `json:"p"`
	Us         float64 `json:"us"`
}

func nsToUs(v int64) float64 { return float64(v) / 1e3 }

// summarize turns h into a Latency with its curve and encoding.
func summarize(h *hdrhistogram.Histogram) Latency {
	l := Latency{Count: h.TotalCount()}
	if l.Count == 0 {
		return l
	}
	l.Mean = h.Mean() / 1e3
	l.P50 = nsToUs(h.ValueAtPercentile(50))
	l.P90 = nsToUs(h.ValueAtPercentile(90))
	l.P99 = nsToUs(h.ValueAtPercentile(99))
	l.P999 = nsToUs(h.ValueAtPercentile(99.9))
	l.Max = nsToUs(h.Max())
	l.Curve = percentileCurve(h)
	if enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
		l.HDR = base64.StdEncoding.EncodeToString(enc)
	}
	return l
}

// percentileCurve samples h at ten points per decade of 1/(1-p) (0, 20.6,
// 36.9, ... 90, ... 99, ... 99.9 ...), stopping where fewer than about two
// samples lie beyond the percentile, and ends with the maximum at 100.
func percentileCurve(h *hdrhistogram.Histogram) []CurvePoint {
	n := h.TotalCount()
	var pts []CurvePoint
	for k := 0; k <= 60; k++ {
		tail := math.Pow(10, -float64(k)/10) // 1-p
		if k > 0 && tail*float64(n) < 2 {
			break
		}
		p := 100 * (1 - tail)
		pts = append(pts, CurvePoint{Percentile: round(p, 4), Us: nsToUs(h.ValueAtPercentile(p))})
	}
	return append(pts, CurvePoint{Percentile: 100, Us: nsToUs(h.Max())})
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// recorder is what one worker observed of one operation during the measured
// window. Not safe for concurrent use: each worker has its own, merged with
// merge when the run ends.
type recorder struct {
	latency *hdrhistogram.Histogram // what the client saw (from the intended send time in an open loop)
	service *hdrhistogram.Histogram // from the actual send; open loop only
	// admitted is, in an open loop, the latency from the actual send of the
	// answers with the expected status: what the requests a server admits
	// under overload get, apart from the ones it sheds at once.
	admitted *hdrhistogram.Histogram
	ok       int64
	status   map[int]int64    // answers with another status than expected
	errs     map[string]int64 // transport errors by kind
	steps    []int64          // successful answers per timeline step
}

func newRecorder(open bool, steps int) *recorder {
	r := &recorder{latency: newHistogram(), status: map[int]int64{}, errs: map[string]int64{}, steps: make([]int64, steps)}
	if open {
		r.service, r.admitted = newHistogram(), newHistogram()
	}
	return r
}

// merge adds o's observations to r.
func (r *recorder) merge(o *recorder) {
	r.latency.Merge(o.latency)
	if r.service != nil && o.service != nil {
		r.service.Merge(o.service)
		r.admitted.Merge(o.admitted)
	}
	r.ok += o.ok
	for k, v := range o.status {
		r.status[k] += v
	}
	for k, v := range o.errs {
		r.errs[k] += v
	}
	for i, v := range o.steps {
		r.steps[i] += v
	}
}

// OpResult is what one operation of a phase measured.
type OpResult struct {
	Op string `json:"op"`
	// Requests counts answers with the expected status (200 for validate,
	// 202 for events) in the measured window.
	Requests int64 `json:"requests"`
	// RPS is Requests per second of the measured window.
	RPS float64 `json:"rps"`
	// AnswersPerSec is every HTTP answer per second of the measured window,
	// refusals (429, 503, ...) included: each cost the server its work.
	AnswersPerSec float64 `json:"answersPerSec"`
	// FramesPerSec is the frames accepted per second (events only).
	FramesPerSec float64 `json:"framesPerSec,omitempty"`
	// Errors counts every other outcome: "HTTP 503", "timeout", ...
	Errors map[string]int64 `json:"errors,omitempty"`
	// Latency is what a client saw: in an open loop, measured from each
	// request's intended send time, so time spent waiting for a free
	// connection is counted (coordinated omission corrected); in a closed
	// loop, from the actual send. Every answer is counted, errors included.
	Latency Latency `json:"latency"`
	// Service is, in an open loop, the latency from the actual send: the
	// uncorrected figure a naive generator would report.
	Service *Latency `json:"service,omitempty"`
	// Admitted is, in an open loop, the latency from the actual send of
	// the successful answers only: under overload, what the admitted
	// requests got while the others were shed.
	Admitted *Latency `json:"admitted,omitempty"`
	// Timeline is the successful answers per second in each step of the
	// measured window.
	Timeline []float64 `json:"timeline"`
}

// ErrorCount is the total of r.Errors.
func (r *OpResult) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// result turns merged observations into an OpResult.
func (r *recorder) result(op *Op, measured, step time.Duration) OpResult {
	out := OpResult{Op: op.Name, Requests: r.ok, Latency: summarize(r.latency)}
	if secs := measured.Seconds(); secs > 0 {
		out.RPS = float64(r.ok) / secs
		answers := r.ok
		for _, v := range r.status {
			answers += v
		}
		out.AnswersPerSec = float64(answers) / secs
		if op.Frames > 0 {
			out.FramesPerSec = out.RPS * float64(op.Frames)
		}
	}
	if r.service != nil {
		s, a := summarize(r.service), summarize(r.admitted)
		out.Service, out.Admitted = &s, &a
	}
	if len(r.status)+len(r.errs) > 0 {
		out.Errors = map[string]int64{}
		for k, v := range r.status {
			out.Errors["HTTP "+strconv.Itoa(k)] += v
		}
		for k, v := range r.errs {
			out.Errors[k] += v
		}
	}
	out.Timeline = make([]float64, len(r.steps))
	for i, v := range r.steps {
		// The last step may be partial.
		d := step
		if rest := measured - time.Duration(i)*step; rest < d {
			d = rest
		}
		if d > 0 {
			out.Timeline[i] = float64(v) / d.Seconds()
		}
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
