package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Report is everything one harness run measured, with how it was measured.
type Report struct {
	Started  time.Time `json:"started"`
	Scenario string    `json:"scenario"`
	Machine  Machine   `json:"machine"`
	Server   Server    `json:"server"`
	Pinning  Pinning   `json:"pinning"`
	Settings Settings  `json:"settings"`
	Seed     *Seeded   `json:"seed,omitempty"`
	Phases   []*Phase  `json:"phases"`
	// Approvals is the approvals scenario's result (it has no phases).
	Approvals *ApprovalsResult `json:"approvals,omitempty"`
	// Ivalt is the ivalt scenario's result (it has no phases either).
	Ivalt *IvaltResult `json:"ivalt,omitempty"`
	// Unloq is the unloq scenario's result (it has no phases either).
	Unloq    *UnloqResult `json:"unloq,omitempty"`
	Headline Headline     `json:"headline"`
	// Disk is the disk-sync probe's result, when one ran.
	Disk *DiskSync `json:"diskSync,omitempty"`
	// Notes are warnings a reader must see next to the figures: a
	// saturated load generator, an open loop behind schedule, errors.
	Notes []string `json:"notes,omitempty"`
	// Command is the command line that reproduces the run.
	Command string `json:"command,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs         int    `json:"cpus"`
	Model        string `json:"cpuModel,omitempty"`
	Kernel       string `json:"kernel,omitempty"`
	Go           string `json:"go"`
	LoadAvgStart string `json:"loadavgStart,omitempty"`
	LoadAvgEnd   string `json:"loadavgEnd,omitempty"`
}

// Server describes the server under load.
type Server struct {
	Addr       string `json:"addr"`
	Spawned    bool   `json:"spawned"`
	PID        int    `json:"pid,omitempty"`
	Durability string `json:"durability,omitempty"`
	Ceiling    string `json:"ceiling,omitempty"` // how the ceiling ran: "process", "inproc", "off"
}

// Settings are the load's knobs.
type Settings struct {
	Connections   int       `json:"connections"`
	Duration      float64   `json:"durationSec"`
	Warmup        float64   `json:"warmupSec"`
	Rate          float64   `json:"rate,omitempty"`
	OpenFractions []float64 `json:"openFractions,omitempty"`
	// CeilingOpenFractions are the fractions of validate's maximum at which
	// the ceiling ran an open loop.
	CeilingOpenFractions []float64 `json:"ceilingOpenFractions,omitempty"`
	Sessions             int       `json:"sessions"`
	EventSessions        int       `json:"eventSessions,omitempty"`
	FramesPerPost        int       `json:"framesPerPost,omitempty"`
	MixEvents            float64   `json:"mixEvents,omitempty"`
	Dim                  int       `json:"embeddingDim,omitempty"`
	// The overload scenario's knobs (Options).
	OverloadFactor      float64  `json:"overloadFactor,omitempty"`
	OverloadConnections int      `json:"overloadConnections,omitempty"`
	OverloadSources     []string `json:"overloadSources,omitempty"`
	UnloadedFraction    float64  `json:"unloadedFraction,omitempty"`
	// The transaction phases' shape: users, and posts per transaction.
	TxnUsers int `json:"txnUsers,omitempty"`
	TxnPosts int `json:"txnPosts,omitempty"`
}

// Headline are the figures PERF.md quotes.
type Headline struct {
	ValidateRPS float64 `json:"validateRps,omitempty"`
	CeilingRPS  float64 `json:"ceilingRps,omitempty"`
	// Ratio is ValidateRPS / CeilingRPS.
	Ratio   float64 `json:"ratioToCeiling,omitempty"`
	C1P50Us float64 `json:"c1P50Us,omitempty"`
	C1P99Us float64 `json:"c1P99Us,omitempty"`
	// OpenP99Us is the corrected p99 of each open loop, keyed by its
	// fraction of the maximum ("0.5").
	OpenP99Us map[string]float64 `json:"openP99Us,omitempty"`
	// CeilingOpenP99Us is the ceiling's p99 at the same rates, keyed the
	// same way: what fasthttp alone gives at that load on this machine.
	CeilingOpenP99Us   map[string]float64 `json:"ceilingOpenP99Us,omitempty"`
	EventsFramesPerSec float64            `json:"eventsFramesPerSec,omitempty"`
	// CeilingEventsFramesPerSec is the ceiling reading the same events
	// posts; EventsRatio the one divided by the other.
	CeilingEventsFramesPerSec float64 `json:"ceilingEventsFramesPerSec,omitempty"`
	EventsRatio               float64 `json:"eventsRatioToCeiling,omitempty"`
	// Transaction is what the transaction phases measured.
	Transaction *TxnHeadline `json:"transaction,omitempty"`
	// Overload has, per operation, what the overload scenario measured.
	Overload []Overload `json:"overload,omitempty"`
}

// TxnHeadline is the transaction phase against its ceiling.
type TxnHeadline struct {
	PerSec        float64 `json:"perSec"`
	CeilingPerSec float64 `json:"ceilingPerSec,omitempty"`
	Ratio         float64 `json:"ratioToCeiling,omitempty"`
	FramesPerSec  float64 `json:"framesPerSec"`
	// CPU of the server per transaction and per frame, and of the ceiling
	// per transaction, in microseconds.
	CPUPerTxnUs        float64 `json:"cpuPerTxnUs,omitempty"`
	CPUPerFrameUs      float64 `json:"cpuPerFrameUs,omitempty"`
	CeilingCPUPerTxnUs float64 `json:"ceilingCpuPerTxnUs,omitempty"`
	// ProcessingShare is the share of validates first answered 202;
	// WaitP99Us and WaitMaxUs their waits.
	ProcessingShare float64 `json:"processingShare"`
	WaitP99Us       float64 `json:"waitP99Us,omitempty"`
	WaitMaxUs       float64 `json:"waitMaxUs,omitempty"`
	// PerMinute and DiskBytes as TxnResult's, of a long run; RSSMax the
	// server's peak.
	PerMinute []float64 `json:"perMinute,omitempty"`
	DiskBytes []int64   `json:"diskBytes,omitempty"`
	RSSMax    int64     `json:"rssMaxBytes,omitempty"`
}

// noteTxn adds a transaction phase (or its ceiling) to the headline.
func (h *Headline) noteTxn(p *Phase) {
	t := p.Transactions
	if t == nil {
		return
	}
	if h.Transaction == nil {
		h.Transaction = &TxnHeadline{}
	}
	x := h.Transaction
	cpu := func(role string) float64 {
		if u := p.UsageOf(role); u != nil && u.Error == "" && t.PerSec > 0 {
			return u.CPU / t.PerSec * 1e6
		}
		return 0
	}
	if p.Role == "ceiling-transaction" {
		x.CeilingPerSec, x.CeilingCPUPerTxnUs = t.PerSec, cpu("ceiling")
	} else {
		x.PerSec, x.FramesPerSec = t.PerSec, t.FramesPerSec
		x.CPUPerTxnUs = cpu("server")
		if t.FramesPerSec > 0 {
			x.CPUPerFrameUs = x.CPUPerTxnUs * t.PerSec / t.FramesPerSec
		}
		x.ProcessingShare, x.WaitP99Us, x.WaitMaxUs = t.ProcessingShare(), t.Waits.P99, t.Waits.Max
		x.PerMinute, x.DiskBytes = t.PerMinute, t.DiskBytes
		if u := p.UsageOf("server"); u != nil {
			x.RSSMax = u.RSSMax
		}
	}
	if x.CeilingPerSec > 0 {
		x.Ratio = x.PerSec / x.CeilingPerSec
	}
}

// Overload is what an operation kept under overload (ScenarioOverload).
type Overload struct {
	Op     string  `json:"op"`
	MaxRPS float64 `json:"maxRps"` // closed loop
	// UnloadedP99Us is the p99 of the unloaded open loop's successful
	// answers, from the actual send; AdmittedP99Us the same under overload.
	UnloadedP99Us float64 `json:"unloadedP99Us"`
	AdmittedP99Us float64 `json:"admittedP99Us"`
	// Scheduled is the overload rate; Offered the answers per second the
	// generator got sent and answered (it falls short of Scheduled when
	// the generator cannot send that fast).
	Scheduled float64 `json:"scheduledRps"`
	Offered   float64 `json:"offeredRps"`
	// Goodput is the successful answers per second under overload, Shed
	// the answers 503 in the window.
	Goodput float64 `json:"goodputRps"`
	Shed    int64   `json:"shed"`
	// GoodputRatio is Goodput / MaxRPS (target >= 0.9), P99Ratio
	// AdmittedP99Us / UnloadedP99Us (target <= 2).
	GoodputRatio float64 `json:"goodputRatio"`
	P99Ratio     float64 `json:"p99Ratio"`
}

// DescribeMachine reads /proc for the CPU model, kernel and load average.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAvgStart = loadAvg()
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// finish computes the headline and the notes from the phases.
func (r *Report) finish(loadCPUs int) {
	r.Machine.LoadAvgEnd = loadAvg()
	h := &r.Headline
	for _, p := range r.Phases {
		switch p.Role {
		case "ceiling":
			if op := p.Op("ceiling"); op != nil {
				h.CeilingRPS = op.RPS
			}
		case "max":
			if op := p.Op("validate"); op != nil {
				h.ValidateRPS = op.RPS
			}
		case "c1":
			if op := p.Op("validate"); op != nil {
				h.C1P50Us, h.C1P99Us = op.Latency.P50, op.Latency.P99
			}
		case "open":
			if op := p.Op("validate"); op != nil {
				if h.OpenP99Us == nil {
					h.OpenP99Us = map[string]float64{}
				}
				h.OpenP99Us[strconv.FormatFloat(p.Fraction, 'f', -1, 64)] = op.Latency.P99
			}
		case "ceiling-open":
			if op := p.Op("ceiling"); op != nil && p.Fraction > 0 {
				if h.CeilingOpenP99Us == nil {
					h.CeilingOpenP99Us = map[string]float64{}
				}
				h.CeilingOpenP99Us[strconv.FormatFloat(p.Fraction, 'f', -1, 64)] = op.Latency.P99
			}
		case "events":
			if op := p.Op("events"); op != nil {
				h.EventsFramesPerSec = op.FramesPerSec
			}
		case "ceiling-events":
			if op := p.Op("ceiling events"); op != nil {
				h.CeilingEventsFramesPerSec = op.FramesPerSec
			}
		case "transaction", "ceiling-transaction":
			h.noteTxn(p)
		}
		if r.Scenario == ScenarioOverload {
			h.noteOverload(p)
		}
	}
	if h.CeilingRPS > 0 && h.ValidateRPS > 0 {
		h.Ratio = h.ValidateRPS / h.CeilingRPS
	}
	if h.CeilingEventsFramesPerSec > 0 {
		h.EventsRatio = h.EventsFramesPerSec / h.CeilingEventsFramesPerSec
	}
	if loadCPUs <= 0 {
		loadCPUs = r.Machine.CPUs
	}
	for _, p := range r.Phases {
		if u := p.UsageOf("client"); u != nil && u.CPU >= 0.9*float64(loadCPUs) {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: the load generator used %.2f of its %d CPU(s): the figure may be the generator's limit, not the server's",
				p.Name, u.CPU, loadCPUs))
		}
		if o, ok := p.OtherCPU(); ok && o >= 0.25 {
			m := p.UsageOf("machine")
			var busy []string
			for i, c := range m.CoreBusy {
				busy = append(busy, fmt.Sprintf("CPU %d %.0f%%", i, 100*c))
			}
			r.Notes = append(r.Notes, fmt.Sprintf("%s: other processes used %.2f CPU cores during the window (busy: %s; hypervisor steal %.2f): the machine was not quiet, treat the figures as disturbed",
				p.Name, o, strings.Join(busy, ", "), m.Steal))
		}

		var total int64
		for i := range p.Ops {
			total += p.Ops[i].Latency.Count
			op := &p.Ops[i]
			if e := op.ErrorCount(); e > 0 {
				hint := ""
				switch {
				case op.Op == "events" && op.Errors["HTTP 409"] > 0:
					hint = "; 409: sessions reached their frame limit, raise --event-sessions"
				case op.Op == "events" && op.Errors["HTTP 503"] > 0:
					hint = "; 503: the frame scoring queue was full (queue_full: ingestion outpaced scoring) or the server shed the post (overloaded: its in-flight bound, or the events share of it under overload)"
					if p.RetryWaits > 0 {
						hint += fmt.Sprintf("; connections waited out Retry-After %d times before their next post", p.RetryWaits)
					}
				}
				r.Notes = append(r.Notes, fmt.Sprintf("%s: %d %s errors (%s)%s", p.Name, e, op.Op, formatErrors(op.Errors), hint))
			}
		}
		switch p.Pacing {
		case "go-timer":
			r.Notes = append(r.Notes, fmt.Sprintf("%s: sends were timed by the Go timer (no timerfd here), which wakes an idle generator up to 1 ms late: the open loop's latencies include that", p.Name))
		case "mixed":
			r.Notes = append(r.Notes, fmt.Sprintf("%s: some connections could not get a timerfd (out of file descriptors?) and timed their sends by the Go timer, up to 1 ms late when idle: the open loop's latencies include that", p.Name))
		}
		if p.Loop == "open" && total > 0 && p.Late*100 > total {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: %d of %d requests were sent more than 1 ms after their scheduled time (every connection busy, or the generator itself late): latency includes that wait",
				p.Name, p.Late, total))
		}
	}
}

// noteOverload adds an overload scenario's phase to the headline: the
// phases of one operation come in the order max, unloaded, overload.
func (h *Headline) noteOverload(p *Phase) {
	if len(p.Ops) != 1 {
		return
	}
	op := &p.Ops[0]
	switch p.Role {
	case "max", "unloaded", "overload":
	default:
		return
	}
	if p.Role == "max" {
		h.Overload = append(h.Overload, Overload{Op: op.Op, MaxRPS: op.RPS})
		return
	}
	if len(h.Overload) == 0 || h.Overload[len(h.Overload)-1].Op != op.Op || op.Admitted == nil {
		return
	}
	o := &h.Overload[len(h.Overload)-1]
	switch p.Role {
	case "unloaded":
		o.UnloadedP99Us = op.Admitted.P99
	case "overload":
		o.AdmittedP99Us = op.Admitted.P99
		o.Scheduled, o.Offered, o.Goodput = p.Rate, op.AnswersPerSec, op.RPS
		o.Shed = op.Errors["HTTP 503"]
		if o.MaxRPS > 0 {
			o.GoodputRatio = o.Goodput / o.MaxRPS
		}
		if o.UnloadedP99Us > 0 {
			o.P99Ratio = o.AdmittedP99Us / o.UnloadedP99Us
		}
	}
}

// WriteFiles writes the report as JSON, Markdown and SVG into dir, as
// <stamp>-<scenario>.{json,md,svg} and latest.{json,md,svg}, and returns the
// paths of the stamped files.
func (r *Report) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	var md, svg bytes.Buffer
	r.WriteMarkdown(&md)
	if err := r.WriteSVG(&svg); err != nil {
		return nil, err
	}
	stem := r.Started.UTC().Format("20060102-150405") + "-" + r.Scenario
	var paths []string
	for _, f := range []struct {
		ext  string
		data []byte
	}{{"json", append(js, '\n')}, {"md", md.Bytes()}, {"svg", svg.Bytes()}} {
		p := filepath.Join(dir, stem+"."+f.ext)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
		if err := os.WriteFile(filepath.Join(dir, "latest."+f.ext), f.data, 0o644); err != nil {
			return paths, err
		}
	}
	return paths, nil
}

// WriteMarkdown writes the results table, the headline and the method.
func (r *Report) WriteMarkdown(w io.Writer) {
	if r.Approvals != nil || r.Ivalt != nil || r.Unloq != nil {
		switch {
		case r.Approvals != nil:
			r.Approvals.WriteMarkdown(w)
		case r.Ivalt != nil:
			r.Ivalt.WriteMarkdown(w)
		default:
			r.Unloq.WriteMarkdown(w)
		}
		fmt.Fprintf(w, "\n- method: %s\n", r.method())
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- **note**: %s\n", n)
		}
		return
	}
	fmt.Fprintf(w, "| phase | loop | conns | throughput | p50 | p90 | p99 | p99.9 | max | p99 uncorrected | errors | server CPU | CPU per request | server RSS | load CPU | other CPU |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, p := range r.Phases {
		loop := p.Loop
		if p.Loop == "open" {
			loop = "open " + formatCount(p.Rate) + "/s"
		}
		srv := p.UsageOf("server")
		if srv == nil {
			srv = p.UsageOf("ceiling")
		}
		cli := p.UsageOf("client")
		other := "-"
		if o, ok := p.OtherCPU(); ok {
			other = strconv.FormatFloat(o, 'f', 2, 64)
		}
		for i := range p.Ops {
			op := &p.Ops[i]
			name := p.Name
			if len(p.Ops) > 1 {
				name += " · " + op.Op
			}
			tput := formatCount(op.RPS) + " req/s"
			if op.FramesPerSec > 0 {
				tput += " = " + formatCount(op.FramesPerSec) + " frames/s"
			}
			uncorrected := "-"
			if op.Service != nil {
				uncorrected = FormatUs(op.Service.P99)
			}
			l := op.Latency
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				name, loop, p.Connections, tput,
				FormatUs(l.P50), FormatUs(l.P90), FormatUs(l.P99), FormatUs(l.P999), FormatUs(l.Max), uncorrected,
				formatCount(float64(op.ErrorCount())), formatCPU(srv), formatCPUPerRequest(srv, p), formatRSS(srv), formatCPU(cli), other)
		}
	}
	h := r.Headline
	fmt.Fprintln(w)
	if h.Ratio > 0 {
		fmt.Fprintf(w, "- validate / ceiling: **%.2f** (%s / %s req/s, same generator, same run)\n", h.Ratio, formatCount(h.ValidateRPS), formatCount(h.CeilingRPS))
	}
	if h.C1P50Us > 0 {
		fmt.Fprintf(w, "- validate service time at c=1: p50 %s, p99 %s\n", FormatUs(h.C1P50Us), FormatUs(h.C1P99Us))
	}
	for _, k := range sortedKeys(h.OpenP99Us) {
		f, _ := strconv.ParseFloat(k, 64)
		fmt.Fprintf(w, "- open loop at %.0f%% of the maximum: p99 %s (from the intended send time)", 100*f, FormatUs(h.OpenP99Us[k]))
		if c, ok := h.CeilingOpenP99Us[k]; ok {
			fmt.Fprintf(w, "; the ceiling at the same rate: p99 %s", FormatUs(c))
		}
		fmt.Fprintln(w)
	}
	for _, k := range sortedKeys(h.CeilingOpenP99Us) {
		if _, ok := h.OpenP99Us[k]; ok {
			continue // said beside validate's
		}
		f, _ := strconv.ParseFloat(k, 64)
		fmt.Fprintf(w, "- the ceiling, open loop at %.0f%% of validate's maximum: p99 %s (from the intended send time)\n", 100*f, FormatUs(h.CeilingOpenP99Us[k]))
	}
	for _, o := range h.Overload {
		fmt.Fprintf(w, "- %s under overload (%s/s scheduled, %s answers/s sent and answered): goodput %s req/s = **%.2f** of the closed-loop %s (target >= 0.90: %s), %s shed with 503; admitted p99 %s = **%.2fx** the unloaded %s (target <= 2: %s)\n",
			o.Op, formatCount(o.Scheduled), formatCount(o.Offered), formatCount(o.Goodput), o.GoodputRatio, formatCount(o.MaxRPS), metText(o.GoodputRatio >= 0.9),
			formatCount(float64(o.Shed)), FormatUs(o.AdmittedP99Us), o.P99Ratio, FormatUs(o.UnloadedP99Us), metText(o.P99Ratio > 0 && o.P99Ratio <= 2))
	}
	if h.EventsFramesPerSec > 0 {
		fmt.Fprintf(w, "- events ingestion: %s frames/s (%d-d embeddings, gzip bodies of %d frames)\n", formatCount(h.EventsFramesPerSec), r.Settings.Dim, r.Settings.FramesPerPost)
	}
	if h.CeilingEventsFramesPerSec > 0 {
		fmt.Fprintf(w, "- events / ceiling reading the same posts: **%.2f** (%s / %s frames/s)\n", h.EventsRatio, formatCount(h.EventsFramesPerSec), formatCount(h.CeilingEventsFramesPerSec))
	}
	if x := h.Transaction; x != nil {
		fmt.Fprintf(w, "- transactions (session, %d gzip events posts of %d frames, validate retried on 202): %s/s = %s frames/s; %s of server CPU per transaction, %s per frame",
			r.Settings.TxnPosts, r.Settings.FramesPerPost, formatCount(x.PerSec), formatCount(x.FramesPerSec), FormatUs(x.CPUPerTxnUs), FormatUs(x.CPUPerFrameUs))
		if x.CeilingPerSec > 0 {
			fmt.Fprintf(w, "; the ceiling %s/s at %s per transaction: **%.2f** of the ceiling", formatCount(x.CeilingPerSec), FormatUs(x.CeilingCPUPerTxnUs), x.Ratio)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "- validates first answered 202 processing: %.2f%%", 100*x.ProcessingShare)
		if x.WaitMaxUs > 0 {
			fmt.Fprintf(w, ", their waits p99 %s, max %s", FormatUs(x.WaitP99Us), FormatUs(x.WaitMaxUs))
		}
		fmt.Fprintln(w)
		if len(x.PerMinute) > 0 {
			var parts []string
			for _, v := range x.PerMinute {
				parts = append(parts, formatCount(v))
			}
			fmt.Fprintf(w, "- transactions/s per minute: %s (last / first %.2f)\n", strings.Join(parts, ", "), x.PerMinute[len(x.PerMinute)-1]/max(x.PerMinute[0], 1e-9))
		}
		if len(x.DiskBytes) > 0 {
			var parts []string
			for _, v := range x.DiskBytes {
				parts = append(parts, strconv.FormatFloat(float64(v)/(1<<20), 'f', 0, 64))
			}
			fmt.Fprintf(w, "- the server's data directory, MiB, at the start and each minute: %s; peak RSS %s MiB\n", strings.Join(parts, ", "), strconv.FormatFloat(float64(x.RSSMax)/(1<<20), 'f', 0, 64))
		}
	}
	if s := r.Seed; s != nil && len(s.ByScenario) > 0 {
		var parts []string
		for _, k := range sortedKeys(s.ByScenario) {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.ByScenario[k]))
		}
		fmt.Fprintf(w, "- seeded %d sessions (%s; %d frames scored; %d unexpected decisions, %d failed) in %.1fs\n",
			len(s.Sessions), strings.Join(parts, ", "), s.Frames, s.Unexpected, s.Failed, s.Seconds)
	}
	if d := r.Disk; d != nil && d.Latency.Count > 0 {
		why := " (each synced answer waits for at least one)"
		if r.Server.Durability == "relaxed" {
			why = " (durability relaxed: no answer waits for one)"
		}
		fmt.Fprintf(w, "- disk: %d %s calls after %d-byte writes in %s before the load, one at a time: p50 %s, p99 %s, max %s%s\n",
			d.Latency.Count, d.Call, d.WriteBytes, d.Dir, FormatUs(d.Latency.P50), FormatUs(d.Latency.P99), FormatUs(d.Latency.Max), why)
	}
	fmt.Fprintf(w, "- method: %s\n", r.method())
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- **note**: %s\n", n)
	}
}

func metText(met bool) string {
	if met {
		return "met"
	}
	return "not met"
}

// method is one line saying how the figures were obtained.
func (r *Report) method() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "%d CPUs", m.CPUs)
	if m.Model != "" {
		fmt.Fprintf(&b, " (%s)", m.Model)
	}
	if m.Kernel != "" {
		fmt.Fprintf(&b, ", Linux %s", m.Kernel)
	}
	fmt.Fprintf(&b, ", %s; ", m.Go)
	p := r.Pinning
	if p.ServerCPUs != "" {
		fmt.Fprintf(&b, "server on CPU %s", p.ServerCPUs)
		if p.ServerGOMAXPROCS > 0 {
			fmt.Fprintf(&b, " with GOMAXPROCS=%d", p.ServerGOMAXPROCS)
		}
		fmt.Fprintf(&b, ", load on CPU %s; ", p.LoadCPUs)
	} else {
		fmt.Fprintf(&b, "no pinning (%s); ", p.Note)
	}
	if r.Server.Durability != "" {
		fmt.Fprintf(&b, "durability %s; ", r.Server.Durability)
	}
	fmt.Fprintf(&b, "%v per phase after %v warmup; load average %s at start, %s at end",
		time.Duration(r.Settings.Duration*float64(time.Second)), time.Duration(r.Settings.Warmup*float64(time.Second)),
		orDash(m.LoadAvgStart), orDash(m.LoadAvgEnd))
	if r.Command != "" {
		fmt.Fprintf(&b, "; `%s`", r.Command)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// FormatUs formats microseconds for a table: "87µs", "1.23ms", "2.01s".
func FormatUs(us float64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
	case us < 1e6:
		return strconv.FormatFloat(us/1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(us/1e6, 'f', 2, 64) + "s"
}

// formatCount formats a count or a rate with thousands separators.
func formatCount(x float64) string {
	n := int64(x + 0.5)
	s := strconv.FormatInt(n, 10)
	if n < 10000 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func formatCPU(u *Usage) string {
	if u == nil || u.Error != "" {
		return "-"
	}
	return strconv.FormatFloat(u.CPU, 'f', 2, 64)
}

// formatCPUPerRequest is the server's CPU time per HTTP answer of the phase
// (all its operations, refusals included, since each cost the server its
// work): the cost figure that stays comparable across rates, where
// throughput at a fixed rate says nothing.
func formatCPUPerRequest(u *Usage, p *Phase) string {
	var rps float64
	for i := range p.Ops {
		rps += p.Ops[i].AnswersPerSec
	}
	if u == nil || u.Error != "" || rps <= 0 {
		return "-"
	}
	return FormatUs(u.CPU / rps * 1e6)
}

func formatRSS(u *Usage) string {
	if u == nil || u.Error != "" || u.RSSMax == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(u.RSSMax)/(1<<20), 'f', 0, 64) + " MiB"
}

func formatErrors(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
