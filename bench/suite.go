package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// Scenarios of a harness run.
const (
	ScenarioSuite    = "suite"    // everything PERF.md quotes, in one run
	ScenarioValidate = "validate" // ceiling, then validate of seeded sessions
	ScenarioEvents   = "events"   // events ingestion
	ScenarioMixed    = "mixed"    // validate and events posts interleaved
	ScenarioCeiling  = "ceiling"  // the ceiling server alone
	ScenarioOverload = "overload" // validate and events far past what they sustain
	// ScenarioApprovals is in approvals.go.
	// ScenarioTransaction is whole transactions (TxnPosts), each with its
	// ceiling: fasthttp answering fixed bodies to the same requests.
	ScenarioTransaction = "transaction"
)

// LoadScenarios lists the scenarios Execute knows.
var LoadScenarios = []string{ScenarioSuite, ScenarioValidate, ScenarioEvents, ScenarioMixed, ScenarioCeiling, ScenarioOverload, ScenarioApprovals, ScenarioTransaction, ScenarioIvalt, ScenarioUnloq}

// Ceiling placements.
const (
	CeilingProcess = "process" // a child process pinned like the server
	CeilingInproc  = "inproc"  // in the harness's own process
	CeilingOff     = "off"
)

// Options configure Execute. Zero values select the documented defaults.
type Options struct {
	// Scenario is one of LoadScenarios; "" is ScenarioSuite.
	Scenario string

	// Spawn starts a server from Binary on a temporary data directory with
	// its own organization; otherwise Addr, CID and APIKey name a running
	// server, and ServerPID (optional) lets the harness sample its CPU and
	// memory.
	Spawn      bool
	Binary     string
	Durability string // spawned server: "sync" (default) or "relaxed"
	ServeArgs  []string
	Addr       string
	CID        string
	APIKey     string
	// AdminKey is the organization's admin key: the approvals scenario
	// enrolls its users with it.
	AdminKey  string
	ServerPID int
	Pin       Pinning

	// Ceiling is where the ceiling server runs: CeilingProcess (default
	// when Binary and CeilingArgs are set), CeilingInproc, or CeilingOff.
	Ceiling string
	// CeilingAddr, when set, is a ceiling already serving there (started
	// with 'countersign bench --serve-ceiling'); Ceiling is then ignored.
	CeilingAddr string
	// CeilingArgs are the arguments that make Binary serve a ceiling on
	// addr answering the body stored in bodyFile.
	CeilingArgs func(addr, bodyFile string) []string

	Connections   int           // default 64
	Duration      time.Duration // measured window of each phase; default 10s
	Warmup        time.Duration // default 1s
	Step          time.Duration // timeline resolution; default 250ms
	Timeout       time.Duration // one request; default 10s
	Rate          float64       // validate/events/mixed/ceiling: open loop at this rate; 0 closed loop
	OpenFractions []float64     // suite: open loops at these fractions of the max; default 0.5, 0.8
	// CeilingOpenFractions are, in the suite, the fractions of validate's
	// closed-loop maximum at which the ceiling also runs an open loop, so
	// validate's tail at a rate has fasthttp's own beside it. nil means
	// 0.5 (the rate of the tail target); an empty slice, none.
	CeilingOpenFractions []float64

	Sessions      int     // seeded validate sessions; default 200
	Parallel      int     // seeding clients; default 8
	EventSessions int     // default 64
	EventBodies   int     // pre-built posts per events session; default 16
	FramesPerPost int     // default 3
	MixEvents     float64 // mixed: share of requests that are events posts; default 0.2

	// Overload: the open loop runs at OverloadFactor times the closed-loop
	// maximum (default 10) over OverloadConnections (default 640, more
	// than the server's 512 per address) bound round-robin to
	// OverloadSources (default 127.0.0.2 to 127.0.0.5), after an unloaded
	// open loop at UnloadedFraction of the maximum (default 0.1).
	OverloadFactor      float64
	OverloadConnections int
	OverloadSources     []string
	UnloadedFraction    float64
	// HeldPolls is, in the approvals scenario, how many users are enrolled
	// and device long polls held at once (default DefaultHeldPolls);
	// WakeSamples how many approvals are decided while they are held
	// (default DefaultWakeSamples).
	HeldPolls   int
	WakeSamples int
	// IvaltUsers is, in the ivalt scenario, how many users are enrolled
	// with a mobile number (default DefaultIvaltUsers).
	IvaltUsers int
	// HeldWait is the device polls' ?wait= (default DefaultHeldWait,
	// whole seconds, at least 1).
	HeldWait time.Duration
	Dim      int // embedding dimension; default 512
	Seed     uint64

	// TxnUsers is the number of enrolled users the transactions are of
	// (default 8), each with TxnSets pre-built sets of posts (default 16).
	TxnUsers, TxnSets int
	// LongSessionTTL is, for a spawned server in a run whose phases last
	// LongRun or more, the sessions' time to live (default a minute,
	// swept every 10 s), so that the run reaches the store's steady state
	// under the sweep within its window; 30 minutes, the default, would
	// only start sweeping after it.
	LongSessionTTL time.Duration

	// ValidateBodies, when set, receives the validate bodies of the seeded
	// sessions, one per line (bench/wrk/compare.sh feeds them to wrk).
	ValidateBodies string
	// DiskProbe, when positive, is how long to measure the disk's syncs
	// (ProbeDiskSync) before any load, in DiskProbeDir or, without one, the
	// spawned server's directory; a server at Addr with no DiskProbeDir is
	// not probed (its disk may not be this machine's).
	DiskProbe    time.Duration
	DiskProbeDir string
	// OutDir receives the JSON, Markdown and SVG results; "" writes none.
	OutDir string
	// Command is the command line, recorded in the report.
	Command string
	// Log receives progress lines; nil discards them.
	Log io.Writer

	dataDir string // a spawned server's data directory
}

// LongRun is the phase duration from which a run is long: the spawned
// server's sessions then live LongSessionTTL, and the ceiling's phase
// lasts ceilingLongCap.
const LongRun = 2 * time.Minute

// ceilingLongCap bounds the ceiling's phase in a long run: fasthttp answering
// fixed bodies does not change with the store, and the run is long for the
// store's sake.
const ceilingLongCap = 10 * time.Second

func (o *Options) defaults() error {
	if o.Scenario == "" {
		o.Scenario = ScenarioSuite
	}
	known := false
	for _, s := range LoadScenarios {
		known = known || s == o.Scenario
	}
	if !known {
		return fmt.Errorf("bench: unknown scenario %q (known: %s)", o.Scenario, strings.Join(LoadScenarios, ", "))
	}
	if o.Connections <= 0 {
		o.Connections = 64
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Step <= 0 {
		o.Step = 250 * time.Millisecond
	}
	if len(o.OpenFractions) == 0 {
		o.OpenFractions = []float64{0.5, 0.8}
	}
	if o.CeilingOpenFractions == nil {
		o.CeilingOpenFractions = []float64{0.5}
	}
	if o.Sessions <= 0 {
		o.Sessions = 200
	}
	if o.EventSessions <= 0 {
		o.EventSessions = 64
	}
	if o.EventBodies <= 0 {
		o.EventBodies = 16
	}
	if o.FramesPerPost <= 0 {
		o.FramesPerPost = simulate.FramesPerPost
	}
	if o.MixEvents <= 0 || o.MixEvents >= 1 {
		o.MixEvents = 0.2
	}
	if o.Dim <= 0 {
		o.Dim = simulate.DefaultDim
	}
	if o.OverloadFactor <= 0 {
		o.OverloadFactor = 10
	}
	if o.OverloadConnections <= 0 {
		o.OverloadConnections = 640
	}
	if len(o.OverloadSources) == 0 {
		o.OverloadSources = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	}
	if o.UnloadedFraction <= 0 || o.UnloadedFraction >= 1 {
		o.UnloadedFraction = 0.1
	}
	if o.Durability == "" {
		o.Durability = "sync"
	}
	if o.HeldPolls <= 0 {
		o.HeldPolls = DefaultHeldPolls
	}
	if o.WakeSamples <= 0 {
		o.WakeSamples = DefaultWakeSamples
	}
	if o.IvaltUsers <= 0 {
		o.IvaltUsers = DefaultIvaltUsers
	}
	if o.HeldWait < time.Second {
		o.HeldWait = DefaultHeldWait
	}
	if o.TxnUsers <= 0 {
		o.TxnUsers = 8
	}
	if o.TxnSets <= 0 {
		o.TxnSets = 16
	}
	if o.LongSessionTTL <= 0 {
		o.LongSessionTTL = time.Minute
	}
	if o.Ceiling == "" {
		o.Ceiling = CeilingInproc
		if o.Binary != "" && o.CeilingArgs != nil {
			o.Ceiling = CeilingProcess
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if !o.Spawn && (o.Addr == "" || (o.Scenario != ScenarioCeiling && (o.CID == "" || o.APIKey == ""))) {
		return errors.New("bench: give a server (addr, cid and API key) or spawn one")
	}
	if o.Spawn && o.Binary == "" {
		return errors.New("bench: spawning needs the countersign binary")
	}
	return nil
}

// Execute runs a scenario end to end: start (or reach) the server, seed it,
// run the phases, and write the results. The report is returned even when
// a phase failed, with what was measured.
func Execute(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, format+"\n", args...) }
	if o.Pin.LoadCPUs != "" {
		if err := PinSelf(o.Pin.LoadCPUs); err != nil {
			logf("pinning the load generator failed, running unpinned: %v", err)
			o.Pin = Pinning{Note: err.Error()}
		}
	}
	r := &Report{
		Started:  time.Now(),
		Scenario: o.Scenario,
		Machine:  DescribeMachine(),
		Pinning:  o.Pin,
		Command:  o.Command,
		Settings: Settings{
			Connections: o.Connections, Duration: o.Duration.Seconds(), Warmup: o.Warmup.Seconds(),
			Rate: o.Rate, Sessions: o.Sessions, Dim: o.Dim,
		},
		Server: Server{Addr: o.Addr, PID: o.ServerPID, Ceiling: o.Ceiling},
	}
	if o.Scenario == ScenarioSuite {
		r.Settings.OpenFractions = o.OpenFractions
	}
	if o.Spawn {
		logf("starting countersign serve (durability %s, %s)", o.Durability, pinText(o.Pin))
		serveArgs := o.ServeArgs
		if o.Scenario == ScenarioApprovals || o.Scenario == ScenarioUnloq {
			// Every held poll is a connection from this one address: the
			// per-IP caps are raised for this run only, by flag.
			n := strconv.Itoa(o.HeldPolls + 2*o.Connections + 64)
			serveArgs = append(serveArgs[:len(serveArgs):len(serveArgs)], "--max-conns-per-ip", n, "--max-waiting-per-ip", n)
			r.Notes = append(r.Notes, "the spawned server ran with --max-conns-per-ip "+n+" and --max-waiting-per-ip "+n+
				": every held poll is a connection from the one load address")
		}
		if o.Duration >= LongRun {
			serveArgs = append(serveArgs[:len(serveArgs):len(serveArgs)], "--session-ttl", o.LongSessionTTL.String(), "--sweep-every", "10s")
			r.Notes = append(r.Notes, fmt.Sprintf("long run: the server's sessions live %v and are swept every 10 s, so the store reaches its steady state within the window", o.LongSessionTTL))
		}
		s, err := Spawn(ctx, SpawnOptions{Binary: o.Binary, Durability: o.Durability, Pin: o.Pin, ServeArgs: serveArgs})
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := s.Stop(); err != nil {
				logf("stopping the server: %v", err)
			}
		}()
		o.Addr, o.CID, o.APIKey, o.AdminKey, o.ServerPID = s.Addr, s.CID, s.APIKey, s.AdminKey, s.PID
		o.dataDir = filepath.Join(s.Dir, "data")
		if o.DiskProbeDir == "" {
			o.DiskProbeDir = s.Dir // the data directory's parent: same file system
		}
		r.Server = Server{Addr: s.Addr, Spawned: true, PID: s.PID, Durability: o.Durability, Ceiling: o.Ceiling}
	}
	if strings.HasPrefix(o.Addr, "https://") {
		return nil, errors.New("bench: the load generator speaks plain HTTP; load a server without TLS")
	}
	o.Addr = strings.TrimSuffix(strings.TrimPrefix(o.Addr, "http://"), "/")
	r.Server.Addr = o.Addr
	if o.DiskProbe > 0 && o.DiskProbeDir != "" {
		// Before the seeding, while the server is idle: the disk alone.
		logf("measuring the disk's syncs in %s for %v", o.DiskProbeDir, o.DiskProbe)
		ds, err := ProbeDiskSync(ctx, o.DiskProbeDir, o.DiskProbe)
		if err != nil {
			r.Notes = append(r.Notes, "the disk-sync probe failed: "+err.Error())
		} else if ds.Latency.Count > 0 {
			r.Disk = ds
			logf("  %s p50 %s, p99 %s, max %s", ds.Call, FormatUs(ds.Latency.P50), FormatUs(ds.Latency.P99), FormatUs(ds.Latency.Max))
		}
	}

	var err error
	switch o.Scenario {
	case ScenarioApprovals:
		err = runApprovals(ctx, o, r, logf)
	case ScenarioIvalt:
		err = runIvalt(ctx, o, r, logf)
	case ScenarioUnloq:
		err = runUnloq(ctx, o, r, logf)
	default:
		err = execute(ctx, o, r, logf)
	}
	r.finish(cpuCount(o.Pin.LoadCPUs))
	if o.OutDir != "" && (len(r.Phases) > 0 || r.Approvals != nil || r.Ivalt != nil || r.Unloq != nil) {
		paths, werr := r.WriteFiles(o.OutDir)
		if werr != nil && err == nil {
			err = werr
		}
		if len(paths) > 0 {
			logf("results: %s", strings.Join(paths, ", "))
		}
	}
	return r, err
}

func pinText(p Pinning) string {
	if p.ServerCPUs == "" {
		return "unpinned"
	}
	return fmt.Sprintf("server on CPU %s with GOMAXPROCS=%d, load on CPU %s", p.ServerCPUs, p.ServerGOMAXPROCS, p.LoadCPUs)
}

func execute(ctx context.Context, o Options, r *Report, logf func(string, ...any)) error {
	needValidate := o.Scenario != ScenarioEvents && o.Scenario != ScenarioCeiling && o.Scenario != ScenarioTransaction
	needTxn := o.Scenario == ScenarioSuite || o.Scenario == ScenarioTransaction
	needEvents := o.Scenario == ScenarioSuite || o.Scenario == ScenarioEvents || o.Scenario == ScenarioMixed ||
		o.Scenario == ScenarioOverload
	seeded := &Seeded{ByScenario: map[string]int{}}
	if needValidate || needEvents || needTxn {
		so := SeedOptions{
			Parallel: o.Parallel, Dim: o.Dim, Seed: o.Seed, Log: o.Log, FramesPerPost: o.FramesPerPost,
		}
		switch {
		case needValidate:
			so.Sessions = o.Sessions
		case needTxn:
			// Enrolled users for the transactions: each enrolls, then
			// validates one genuine session.
			so.Sessions, so.Mix = 2*o.TxnUsers, []string{"genuine"}
		default:
			so.Sessions = 9 // enrolled users for the events sessions
		}
		if needEvents {
			so.EventSessions, so.EventBodies = o.EventSessions, o.EventBodies
			r.Settings.EventSessions, r.Settings.FramesPerPost = o.EventSessions, o.FramesPerPost
		}
		logf("seeding %d sessions through the API (and %d events sessions)", so.Sessions, so.EventSessions)
		s, err := Seed(ctx, client.Config{Addr: o.Addr, CID: o.CID, APIKey: o.APIKey}, so)
		if s != nil {
			r.Seed = s
			seeded = s
		}
		if err != nil {
			return err
		}
	}
	if o.ValidateBodies != "" && len(seeded.Sessions) > 0 {
		if err := writeBodies(o.ValidateBodies, seeded.Sessions); err != nil {
			return err
		}
	}

	watch := func(role string, pid int) []Watched {
		w := []Watched{{Role: "client", PID: os.Getpid()}}
		if pid > 0 {
			w = append(w, Watched{Role: role, PID: pid})
		}
		return w
	}
	base := Load{
		Addr: o.Addr, Connections: o.Connections, Duration: o.Duration, Warmup: o.Warmup,
		Step: o.Step, Timeout: o.Timeout, Watch: watch("server", o.ServerPID),
	}
	run := func(l Load) (*Phase, error) {
		logf("phase %s: %s loop, %d connections%s, %v (+%v warmup)", l.Name, loopName(l.Rate), l.Connections, rateText(l.Rate), l.Duration, l.Warmup)
		p, err := Run(ctx, l)
		if p != nil {
			r.Phases = append(r.Phases, p)
			for i := range p.Ops {
				op := &p.Ops[i]
				logf("  %s: %s req/s, p50 %s, p99 %s, max %s, %d errors", op.Op, formatCount(op.RPS),
					FormatUs(op.Latency.P50), FormatUs(op.Latency.P99), FormatUs(op.Latency.Max), op.ErrorCount())
			}
		}
		return p, err
	}
	validate := ValidateOp("validate", o.Addr, o.APIKey, seeded.Sessions)
	var events *Op
	if len(seeded.EventSessions) > 0 {
		events = EventsOp(o.Addr, o.CID, seeded.EventSessions, o.FramesPerPost)
	} else if needEvents {
		return errors.New("bench: no events sessions were created")
	}

	if o.Scenario == ScenarioTransaction {
		return runTxnPhases(ctx, o, seeded, base, run, logf, r)
	}

	// The ceiling first: the same requests, answered by fasthttp alone, at
	// the rate validate will be given (closed loop in the suite).
	ceiling := o.Ceiling != CeilingOff || o.CeilingAddr != ""
	if o.Scenario == ScenarioSuite || o.Scenario == ScenarioValidate || o.Scenario == ScenarioCeiling {
		if ceiling {
			rate := o.Rate
			if o.Scenario == ScenarioSuite {
				rate = 0
			}
			if _, err := runCeiling(ctx, o, seeded, base, rate, run, logf); err != nil {
				return err
			}
		}
	}

	switch o.Scenario {
	case ScenarioSuite:
		l := base
		l.Name, l.Ops = fmt.Sprintf("validate c=%d", o.Connections), []Share{{Op: validate}}
		p, err := run(l)
		if err != nil {
			return err
		}
		p.Role = "max"
		maxRPS := p.Ops[0].RPS

		l.Name, l.Connections = "validate c=1", 1
		if p, err = run(l); err != nil {
			return err
		}
		p.Role = "c1"

		for _, f := range o.OpenFractions {
			if maxRPS <= 0 {
				break
			}
			l := base
			l.Name = fmt.Sprintf("validate open %.0f%%", 100*f)
			l.Ops, l.Rate = []Share{{Op: validate}}, f*maxRPS
			if p, err = run(l); err != nil {
				return err
			}
			p.Role, p.Fraction = "open", f
		}

		// The ceiling's open loops at validate's rates: the tail and CPU
		// per request of fasthttp alone at the same load, on this machine.
		for _, f := range o.CeilingOpenFractions {
			if maxRPS <= 0 || !ceiling {
				break
			}
			p, err := runCeiling(ctx, o, seeded, base, f*maxRPS, run, logf)
			if err != nil {
				return err
			}
			p.Fraction = f
			r.Settings.CeilingOpenFractions = append(r.Settings.CeilingOpenFractions, f)
		}

		l = base
		l.Name, l.Ops = fmt.Sprintf("events c=%d", o.Connections), []Share{{Op: events}}
		if p, err = run(l); err != nil {
			return err
		}
		p.Role = "events"
		if ceiling {
			if _, err := runEventsCeiling(ctx, o, seeded, base, run, logf); err != nil {
				return err
			}
		}
		if err := runTxnPhases(ctx, o, seeded, base, run, logf, r); err != nil {
			return err
		}
	case ScenarioValidate:
		l := base
		l.Name, l.Ops, l.Rate = fmt.Sprintf("validate c=%d", o.Connections), []Share{{Op: validate}}, o.Rate
		if o.Rate > 0 {
			l.Name = fmt.Sprintf("validate open %s/s", formatCount(o.Rate))
		}
		p, err := run(l)
		if err != nil {
			return err
		}
		p.Role = "max"
		if o.Rate > 0 {
			p.Role = "open-fixed"
		}
	case ScenarioEvents:
		l := base
		l.Name, l.Ops, l.Rate = fmt.Sprintf("events c=%d", o.Connections), []Share{{Op: events}}, o.Rate
		p, err := run(l)
		if err != nil {
			return err
		}
		p.Role = "events"
	case ScenarioMixed:
		r.Settings.MixEvents = o.MixEvents
		ev := int(o.MixEvents*10 + 0.5)
		ev = min(max(ev, 1), 9)
		l := base
		l.Name, l.Rate = fmt.Sprintf("mixed c=%d", o.Connections), o.Rate
		l.Ops = []Share{{Op: validate, Weight: 10 - ev}, {Op: events, Weight: ev}}
		p, err := run(l)
		if err != nil {
			return err
		}
		p.Role = "mixed"
	case ScenarioOverload:
		r.Settings.OverloadFactor, r.Settings.OverloadConnections = o.OverloadFactor, o.OverloadConnections
		r.Settings.OverloadSources, r.Settings.UnloadedFraction = o.OverloadSources, o.UnloadedFraction
		for _, op := range []*Op{validate, events} {
			if err := runOverload(o, base, op, run); err != nil {
				return err
			}
		}
	}
	return nil
}

// runOverload measures op three times: the closed-loop maximum
// (role "max"), an open loop at UnloadedFraction of it ("unloaded"), and
// an open loop at OverloadFactor times it over OverloadConnections from
// several source addresses ("overload"). What the last shows against the
// first two: the goodput kept (successful answers per second against the
// maximum) and the latency of the admitted requests (against the unloaded
// one), while the rest are shed.
func runOverload(o Options, base Load, op *Op, run func(Load) (*Phase, error)) error {
	l := base
	l.Name, l.Ops = fmt.Sprintf("%s c=%d", op.Name, o.Connections), []Share{{Op: op}}
	p, err := run(l)
	if err != nil {
		return err
	}
	p.Role = "max"
	maxRPS := p.Ops[0].RPS
	if maxRPS <= 0 {
		return fmt.Errorf("bench: %s answered nothing in the closed loop", op.Name)
	}
	l.Name, l.Rate = fmt.Sprintf("%s open %.0f%% (unloaded)", op.Name, 100*o.UnloadedFraction), o.UnloadedFraction*maxRPS
	if p, err = run(l); err != nil {
		return err
	}
	p.Role, p.Fraction = "unloaded", o.UnloadedFraction
	l.Name, l.Rate = fmt.Sprintf("%s open %gx (overload)", op.Name, o.OverloadFactor), o.OverloadFactor*maxRPS
	l.Connections, l.LocalAddrs, l.EndOnTime = o.OverloadConnections, o.OverloadSources, true
	if p, err = run(l); err != nil {
		return err
	}
	p.Role, p.Fraction = "overload", o.OverloadFactor
	return nil
}

func loopName(rate float64) string {
	if rate > 0 {
		return "open"
	}
	return "closed"
}

func rateText(rate float64) string {
	if rate > 0 {
		return ", " + formatCount(rate) + " req/s scheduled"
	}
	return ""
}

// runCeiling starts the ceiling where o says, measures it with the
// validate requests (an open loop at rate when rate > 0), and stops it. The
// phase's Role is "ceiling" for the closed loop, "ceiling-open" otherwise.
func runCeiling(ctx context.Context, o Options, seeded *Seeded, base Load, rate float64, run func(Load) (*Phase, error), logf func(string, ...any)) (*Phase, error) {
	addr, pid, stop, err := startCeiling(ctx, o, seeded, logf)
	if err != nil {
		return nil, err
	}
	defer stop()
	l := base
	l.Addr, l.Rate = addr, rate
	l.Name = fmt.Sprintf("ceiling c=%d", o.Connections)
	if rate > 0 {
		l.Name = fmt.Sprintf("ceiling open %s/s", formatCount(rate))
	}
	l.Ops = []Share{{Op: ValidateOp("ceiling", addr, o.APIKey, seeded.Sessions)}}
	l.Watch = ceilingWatch(pid)
	p, err := run(l)
	if p != nil {
		p.Role = "ceiling"
		if rate > 0 {
			p.Role = "ceiling-open"
		}
	}
	return p, err
}

// runEventsCeiling measures the ceiling with the events phase's posts
// (role "ceiling-events"): fasthttp reading the same bodies and answering
// 202, for the events' frames/s to be divided by.
func runEventsCeiling(ctx context.Context, o Options, seeded *Seeded, base Load, run func(Load) (*Phase, error), logf func(string, ...any)) (*Phase, error) {
	addr, pid, stop, err := startCeiling(ctx, o, seeded, logf)
	if err != nil {
		return nil, err
	}
	defer stop()
	l := base
	l.Addr, l.Watch = addr, ceilingWatch(pid)
	l.Name = fmt.Sprintf("ceiling events c=%d", o.Connections)
	op := eventsOp(addr, o.CID, seeded.EventSessions, o.FramesPerPost, true)
	op.Name = "ceiling events"
	l.Ops = []Share{{Op: op}}
	p, err := run(l)
	if p != nil {
		p.Role = "ceiling-events"
	}
	return p, err
}

// runTxnPhases measures whole transactions against the ceiling (role
// "ceiling-transaction") and then against the server (role "transaction").
func runTxnPhases(ctx context.Context, o Options, seeded *Seeded, base Load, run func(Load) (*Phase, error), logf func(string, ...any), r *Report) error {
	users := seeded.Enrolled
	if len(users) > o.TxnUsers {
		users = users[:o.TxnUsers]
	}
	runID := seeded.RunID
	if runID == "" {
		runID = "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	script, err := NewTxnScript(o.CID, o.APIKey, runID, users, o.TxnSets, o.FramesPerPost, o.Dim, o.Seed)
	if err != nil {
		return err
	}
	r.Settings.TxnUsers, r.Settings.TxnPosts, r.Settings.FramesPerPost = len(users), TxnPosts, o.FramesPerPost
	runTxn := func(l TxnLoad) (*Phase, error) {
		logf("phase %s: closed loop of transactions (session, %d events posts of %d frames, validate), %d connections, %v (+%v warmup)",
			l.Name, TxnPosts, o.FramesPerPost, l.Connections, l.Duration, l.Warmup)
		p, err := RunTransactions(ctx, l)
		if p != nil {
			r.Phases = append(r.Phases, p)
			for i := range p.Ops {
				op := &p.Ops[i]
				logf("  %s: %s/s, p50 %s, p99 %s, max %s, %d errors", op.Op, formatCount(op.RPS),
					FormatUs(op.Latency.P50), FormatUs(op.Latency.P99), FormatUs(op.Latency.Max), op.ErrorCount())
			}
			if t := p.Transactions; t != nil {
				logf("  validates first answered 202: %d of %d (waits p99 %s, max %s)", t.Processing, t.Validates, FormatUs(t.Waits.P99), FormatUs(t.Waits.Max))
			}
		}
		return p, err
	}
	l := TxnLoad{
		Script: script, Connections: o.Connections, Duration: o.Duration, Warmup: o.Warmup,
		Step: o.Step, Timeout: o.Timeout,
	}
	if o.Ceiling != CeilingOff || o.CeilingAddr != "" {
		addr, pid, stop, err := startCeiling(ctx, o, seeded, logf)
		if err != nil {
			return err
		}
		cl := l
		cl.Name, cl.Addr, cl.Watch = fmt.Sprintf("ceiling transactions c=%d", o.Connections), addr, ceilingWatch(pid)
		if cl.Duration >= LongRun {
			cl.Duration = ceilingLongCap
		}
		p, err := runTxn(cl)
		stop()
		if p != nil {
			p.Role = "ceiling-transaction"
		}
		if err != nil {
			return err
		}
	}
	l.Name, l.Addr, l.DataDir = fmt.Sprintf("transactions c=%d", o.Connections), o.Addr, o.dataDir
	l.Watch = []Watched{{Role: "client", PID: os.Getpid()}}
	if o.ServerPID > 0 {
		l.Watch = append(l.Watch, Watched{Role: "server", PID: o.ServerPID})
	}
	_, err = runTxn(l)
	return err
}

func ceilingWatch(pid int) []Watched {
	w := []Watched{{Role: "client", PID: os.Getpid()}}
	if pid > 0 {
		w = append(w, Watched{Role: "ceiling", PID: pid})
	}
	return w
}

// startCeiling starts the ceiling where o says and returns its address,
// its pid (0 in process) and how to stop it.
func startCeiling(ctx context.Context, o Options, seeded *Seeded, logf func(string, ...any)) (addr string, pid int, stop func(), err error) {
	body := seeded.Sample
	if len(body) == 0 {
		body = []byte(SampleDecision)
	}
	placement := o.Ceiling
	if o.CeilingAddr != "" {
		placement = "external"
	}
	switch placement {
	case "external":
		addr, stop = strings.TrimSuffix(strings.TrimPrefix(o.CeilingAddr, "http://"), "/"), func() {}
		logf("ceiling (external) on %s", addr)
		return addr, 0, stop, nil
	case CeilingProcess:
		f, err := os.CreateTemp("", "countersign-ceiling-*.json")
		if err != nil {
			return "", 0, nil, err
		}
		defer os.Remove(f.Name()) // the child has read it once it is ready
		if _, err := f.Write(body); err != nil {
			f.Close()
			return "", 0, nil, err
		}
		f.Close()
		if addr, err = FreeAddr(); err != nil {
			return "", 0, nil, err
		}
		p, err := StartProcess(ctx, o.Binary, o.CeilingArgs(addr, f.Name()), addr, "", o.Pin.ServerCPUs, o.Pin.ServerGOMAXPROCS)
		if err != nil {
			return "", 0, nil, err
		}
		pid, stop = p.PID, func() { _ = p.Stop() }
	case CeilingInproc:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", 0, nil, err
		}
		c := NewCeiling(body)
		go func() { _ = c.Serve(ln) }()
		addr, stop = ln.Addr().String(), func() { _ = c.Shutdown() }
	default:
		return "", 0, nil, fmt.Errorf("bench: unknown ceiling placement %q (process, inproc, off)", o.Ceiling)
	}
	logf("ceiling (%s) on %s answers a %d-byte validate body", placement, addr, len(body))
	return addr, pid, stop, nil
}

// writeBodies writes one validate body per line.
func writeBodies(path string, sessions []SeededSession) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	var b []byte
	for _, s := range sessions {
		b = append(b, s.Body...)
		b = append(b, '\n')
	}
	return os.WriteFile(path, b, 0o644)
}

// ParseFractions parses "0.5,0.8" (or "50%,80%").
func ParseFractions(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pct := strings.HasSuffix(part, "%")
		v, err := strconv.ParseFloat(strings.TrimSuffix(part, "%"), 64)
		if err != nil {
			return nil, fmt.Errorf("bench: bad fraction %q", part)
		}
		if pct {
			v /= 100
		}
		if v <= 0 || v > 2 {
			return nil, fmt.Errorf("bench: fraction %q out of (0, 2]", part)
		}
		out = append(out, v)
	}
	return out, nil
}
