package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/countersign/countersign/bench"
	"github.com/countersign/countersign/simulate"
)

// cmdBench runs the load harness (package bench) and prints its table.
func cmdBench(args []string, e *env) error {
	c := newCommand("bench", "countersign bench --spawn [flags]  |  countersign bench --addr HOST:PORT --cid CID --apikey KEY [flags]",
		"Measures countersign under load. With --spawn it starts its own server from this binary on a temporary "+
			"data directory with a new organization (pinned: server on CPU 0 with GOMAXPROCS=1, load on CPU 1, when "+
			"taskset exists and there are 2 CPUs); otherwise it loads the server at --addr as the organization of "+
			"--cid and --apikey. It seeds sessions through the public API (enrolled users; genuine, impostor, replay "+
			"and values-only sessions, every frame scored), then runs the scenario's phases with one connection per "+
			"worker. Closed loops send as fast as answers come; open loops (--rate, or the suite's fractions of the "+
			"maximum) schedule requests at a fixed rate, timed by the kernel's high-resolution timer (timerfd; the Go timer where "+
			"there is none, with a note), and "+
			"measure latency from each request's intended send time, so coordinated omission is corrected. A "+
			"closed-loop worker answered 429 or 503 with Retry-After waits that long, as the SDK does. The ceiling is fasthttp answering "+
			"the bytes of a real validate "+
			"answer, measured by the same generator in the same run. Scenarios: suite (ceiling, validate at "+
			"--connections, validate c=1, open loops at --open-fractions of the maximum, the ceiling's open loops at "+
			"--ceiling-open-fractions, events, the ceiling reading the same events posts, and transactions), validate, events, "+
			"mixed, ceiling, overload (validate, then events: the closed-loop maximum, an open loop at 10% of it "+
			"(unloaded), and an open loop at --overload-factor times it over --overload-connections from "+
			"--overload-sources; reports goodput against the maximum and the admitted requests' p99 against the unloaded one), approvals (enrolls "+
			"--held-polls users with a device each; holds a device long poll for every one and reads the server's RSS; decides "+
			"--wake-samples approvals one at a time while they are held, timing the device's answer to the requester's held "+
			"GET /v1/approvals/{id}?wait=; then --connections workers create, read as the device and approve approvals in a "+
			"closed loop, durable, for --duration), "+
			"transaction (whole transactions as a backend and the SDK make them: POST /v1/sessions, 4 gzip events posts of "+
			"--frames-per-post frames, the last final, then POST /v1/validate sent again after retryAfterMS while it answers 202; "+
			"against the ceiling answering the same requests; reports transactions/s, frames/s, CPU per transaction and per frame, "+
			"the validates answered 202 and their waits, latency per request kind; a --duration of 2m or more is a long run: the "+
			"spawned server's sessions live a minute and are swept, and throughput, data directory size and RSS are reported per minute), "+
			"ivalt (enrolls --ivalt-users users with a mobile number and a device; then --connections workers sign them in through /ivalt "+
			"in a closed loop: the push request, a result poll answered 422, the device's list and approval, the result poll's 200), unloq (enrolls --held-polls users with a device each; holds a "+
			"POST /unloq/v1/authenticate for every one and reads the server's RSS; decides --wake-samples of them one at a time "+
			"from their devices, timing the device's answer to the held authenticate's 200). Prints a Markdown table and writes JSON, Markdown and an SVG plot into --out. Progress "+
			"goes to stderr.")
	c.examples = "  countersign bench --spawn                                  # the suite, as make bench runs it\n" +
		"  countersign bench --spawn --scenario overload --duration 5s # goodput and tail at 10x the sustainable rate\n" +
		"  countersign bench --spawn --scenario validate --connections 16 --rate 2000 --duration 30s\n" +
		"  countersign bench --spawn --scenario approvals --duration 5s    # approvals/s, 10,000 held polls, wake-up latency\n" +
		"  countersign bench --spawn --scenario ivalt --duration 5s        # iVALT sign-ins/s end to end, and their latency\n" +
		"  countersign bench --spawn --scenario unloq                     # 10,000 held UNLOQ authenticates, RSS, decision -> answer\n" +
		"  countersign bench --addr 127.0.0.1:8080 --cid cid_... --apikey csk_... --server-pid $(pgrep -n countersign)\n"
	spawn := c.Bool("spawn", false, "start a server from this binary on a temporary data directory (removed afterwards); --addr, --cid and --apikey are then ignored")
	addr := c.String("addr", "HOST:PORT", "", "server to load (without --spawn)")
	cid := c.String("cid", "CID", "", "the organization's client id (without --spawn)")
	apiKey := c.String("apikey", "KEY", "", "the organization's API key (without --spawn)")
	adminKey := c.String("admin-key", "KEY", "", "the organization's admin key (without --spawn; the approvals scenario enrolls users with it)")
	heldPolls := c.Int("held-polls", "N", bench.DefaultHeldPolls, "approvals scenario: users enrolled, one device each, and device long polls held at once (a server at --addr needs --max-conns-per-ip and --max-waiting-per-ip above it)")
	ivaltUsers := c.Int("ivalt-users", "N", bench.DefaultIvaltUsers, "ivalt scenario: users enrolled with a mobile number and a device, each signed in at most 10 times")
	wakeSamples := c.Int("wake-samples", "N", bench.DefaultWakeSamples, "approvals scenario: approvals decided one at a time while the polls are held, for the wake-up latency")
	serverPID := c.Int("server-pid", "PID", 0, "pid of the server at --addr, to report its CPU and memory from /proc (a spawned server is watched anyway)")
	durability := c.String("durability", "sync|relaxed", "sync", "durability of the spawned server; relaxed is for experiments, never a headline")
	scenario := c.String("scenario", "NAME", bench.ScenarioSuite, "what to measure: "+strings.Join(bench.LoadScenarios, ", "))
	duration := c.Duration("duration", "DURATION", 10*time.Second, "measured window of each phase")
	warmup := c.Duration("warmup", "DURATION", time.Second, "unmeasured load before each phase's window")
	connections := c.Int("connections", "N", 64, "connections (one per worker, no pipelining) of the closed loops and the open loops")
	rate := c.Int("rate", "REQ/S", 0, "validate, events, mixed or ceiling scenario: an open loop at this rate instead of a closed loop (the validate scenario runs its ceiling at the same rate)")
	fractions := c.String("open-fractions", "LIST", "0.5,0.8", "suite: open loops at these fractions of the measured closed-loop maximum")
	ceilingFractions := c.String("ceiling-open-fractions", "LIST", "0.5", "suite: the ceiling also runs open loops at these fractions of validate's closed-loop maximum, for fasthttp's own tail and CPU per request at validate's rate (\"\" for none)")
	sessions := c.Int("sessions", "N", 200, "sessions seeded for validate (one enrollment per user, then genuine, impostor, replay, values-only)")
	seeders := c.Int("seeders", "N", 8, "simulated clients seeding at once")
	eventSessions := c.Int("event-sessions", "N", 64, "sessions receiving events posts in the events and mixed scenarios")
	eventBodies := c.Int("event-bodies", "N", 16, "pre-built gzip events bodies per events session (frame numbers rise across them)")
	framesPerPost := c.Int("frames-per-post", "N", 3, "frames in each events post")
	mixEvents := c.String("mix-events", "FRACTION", "0.2", "mixed scenario: share of requests that are events posts (in tenths)")
	dim := c.Int("embedding-dim", "D", simulate.DefaultDim, "components of every face embedding (the server's --embedding-dim; given to a spawned server)")
	seed := c.Int("seed", "N", 1, "seed of the synthetic faces")
	ceiling := c.String("ceiling", "process|inproc|off", bench.CeilingProcess, "where the ceiling server runs: a child process pinned like the server (fair), inside the harness (shares the load generator's CPU), or not at all")
	pin := c.String("pin", "auto|on|off", "auto", "pin with taskset (when available and there are 2 CPUs) the server and the ceiling to --server-cpus and this process to --load-cpus; auto pins only with --spawn, on also for a server at --addr (pin that server yourself), off never")
	serverCPUs := c.String("server-cpus", "LIST", "0", "taskset CPU list of the spawned server and the ceiling")
	loadCPUs := c.String("load-cpus", "LIST", "1", "taskset CPU list of the load generator (this process)")
	serverProcs := c.Int("server-gomaxprocs", "N", 1, "GOMAXPROCS of the spawned server and the ceiling when pinned")
	overloadFactor := c.String("overload-factor", "X", "10", "overload scenario: the open loop's rate as a multiple of the closed-loop maximum")
	overloadConns := c.Int("overload-connections", "N", 640, "overload scenario: connections of the overloading open loop (more than the server's 512 per address)")
	overloadSources := c.String("overload-sources", "LIST", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5", "overload scenario: source addresses the overloading connections are bound to, round-robin")
	servePprof := c.String("serve-pprof", "HOST:PORT", "", "the spawned server's --pprof address, to profile it under load (default: off)")
	serveInFlight := c.Int("serve-max-in-flight", "N", 0, "the spawned server's --max-in-flight (0: its default)")
	step := c.Duration("step", "DURATION", 250*time.Millisecond, "resolution of the throughput-over-time series")
	timeout := c.Duration("timeout", "DURATION", 10*time.Second, "timeout of one request")
	diskProbe := c.Duration("disk-probe", "DURATION", 2*time.Second, "before the load, measure the sync latency (fdatasync; fsync off Linux) of small writes (one at a time) in --disk-probe-dir or the spawned server's directory, and report it (0 for none)")
	diskProbeDir := c.String("disk-probe-dir", "DIR", "", "directory on the server's disk for --disk-probe (a server at --addr is probed only with it)")
	out := c.String("out", "DIR", "bench/results", "directory for the JSON, Markdown and SVG results (\"\" writes none)")
	bodies := c.String("validate-bodies", "FILE", "", "also write the seeded sessions' validate bodies there, one per line (for wrk)")
	ceilingAddr := c.String("ceiling-addr", "HOST:PORT", "", "measure the ceiling already serving there (countersign bench --serve-ceiling) instead of starting one")
	serveCeiling := c.String("serve-ceiling", "HOST:PORT", "", "internal: serve only the ceiling on this address until SIGTERM (the harness starts it so)")
	ceilingBody := c.String("ceiling-body", "FILE", "", "internal, with --serve-ceiling: the body the ceiling answers")
	if err := e.parse(c, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serveCeiling != "" {
		return serveCeilingOnly(ctx, *serveCeiling, *ceilingBody)
	}

	fr, err := bench.ParseFractions(*fractions)
	if err != nil {
		return usagef("--open-fractions: %v", err)
	}
	cfr, err := bench.ParseFractions(*ceilingFractions)
	if err != nil {
		return usagef("--ceiling-open-fractions: %v", err)
	}
	if cfr == nil {
		cfr = []float64{} // none, not the default
	}
	var mix float64
	if _, err := fmt.Sscanf(*mixEvents, "%g", &mix); err != nil || mix <= 0 || mix >= 1 {
		return usagef("--mix-events must be a fraction between 0 and 1")
	}
	switch {
	case !*spawn && *scenario != bench.ScenarioCeiling && (*addr == "" || *cid == "" || *apiKey == ""):
		return usagef("give --spawn, or --addr, --cid and --apikey of a running server")
	case *connections < 1 || *connections > 512:
		return usagef("--connections must be between 1 and 512 (the server's per-IP connection cap)")
	case *duration <= 0 || *warmup < 0 || *rate < 0 || *sessions < 1 || *dim < 1 || *diskProbe < 0:
		return usagef("--duration, --sessions and --embedding-dim must be positive; --warmup, --rate and --disk-probe not negative")
	case *diskProbeDir != "" && *diskProbe == 0:
		return usagef("--disk-probe-dir needs a --disk-probe duration above 0")
	case *durability != "sync" && *durability != "relaxed":
		return usagef("--durability %q: want sync or relaxed", *durability)
	case *ceiling != bench.CeilingProcess && *ceiling != bench.CeilingInproc && *ceiling != bench.CeilingOff:
		return usagef("--ceiling %q: want process, inproc or off", *ceiling)
	}
	pinning := bench.Pinning{Note: "--pin off"}
	switch *pin {
	case "auto", "on":
		if *pin == "auto" && !*spawn {
			pinning.Note = "the server was not spawned: pin it and the harness yourself, or pass --pin on"
			break
		}
		pinning = bench.DefaultPinning()
		if pinning.ServerCPUs != "" {
			pinning.ServerCPUs, pinning.LoadCPUs, pinning.ServerGOMAXPROCS = *serverCPUs, *loadCPUs, *serverProcs
		}
	case "off":
	default:
		return usagef("--pin %q: want auto, on or off", *pin)
	}
	binary, err := os.Executable()
	if err != nil {
		return err
	}
	if *scenario == bench.ScenarioCeiling {
		*spawn = false // the ceiling alone needs no server
		if *addr == "" {
			*addr = "127.0.0.1:1"
		}
	}
	factor, ferr := strconv.ParseFloat(*overloadFactor, 64)
	if ferr != nil || factor <= 1 {
		return usagef("--overload-factor %q: want a number above 1", *overloadFactor)
	}
	serveArgs := []string{"--embedding-dim", strconv.Itoa(*dim)}
	if *servePprof != "" {
		serveArgs = append(serveArgs, "--pprof", *servePprof)
	}
	if *serveInFlight != 0 {
		serveArgs = append(serveArgs, "--max-in-flight", strconv.Itoa(*serveInFlight))
	}
	r, err := bench.Execute(ctx, bench.Options{
		Scenario:    *scenario,
		Spawn:       *spawn,
		Binary:      binary,
		Durability:  *durability,
		ServeArgs:   serveArgs,
		Addr:        *addr,
		CID:         *cid,
		APIKey:      *apiKey,
		AdminKey:    *adminKey,
		HeldPolls:   *heldPolls,
		WakeSamples: *wakeSamples,
		IvaltUsers:  *ivaltUsers,
		ServerPID:   *serverPID,
		Pin:         pinning,
		Ceiling:     *ceiling,
		CeilingAddr: *ceilingAddr,
		CeilingArgs: func(addr, bodyFile string) []string {
			return []string{"bench", "--serve-ceiling", addr, "--ceiling-body", bodyFile}
		},
		Connections:          *connections,
		Duration:             *duration,
		Warmup:               *warmup,
		Step:                 *step,
		Timeout:              *timeout,
		Rate:                 float64(*rate),
		OpenFractions:        fr,
		CeilingOpenFractions: cfr,
		Sessions:             *sessions,
		Parallel:             *seeders,
		EventSessions:        *eventSessions,
		EventBodies:          *eventBodies,
		FramesPerPost:        *framesPerPost,
		MixEvents:            mix,
		OverloadFactor:       factor,
		OverloadConnections:  *overloadConns,
		OverloadSources:      strings.Split(*overloadSources, ","),
		Dim:                  *dim,
		Seed:                 uint64(*seed),
		ValidateBodies:       *bodies,
		DiskProbe:            *diskProbe,
		DiskProbeDir:         *diskProbeDir,
		OutDir:               *out,
		Command:              strings.TrimSpace(e.prog + " bench " + strings.Join(args, " ")),
		Log:                  e.stderr,
	})
	if r != nil && (len(r.Phases) > 0 || r.Approvals != nil || r.Ivalt != nil || r.Unloq != nil) {
		fmt.Fprintln(e.stdout)
		r.WriteMarkdown(e.stdout)
	}
	return err
}

// serveCeilingOnly is the ceiling process the harness starts: fasthttp
// answering one fixed body until SIGTERM.
func serveCeilingOnly(ctx context.Context, addr, bodyFile string) error {
	var body []byte
	if bodyFile != "" {
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			return err
		}
		body = b
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	c := bench.NewCeiling(body)
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(ln) }()
	select {
	case <-ctx.Done():
		return c.Shutdown()
	case err := <-errc:
		return err
	}
}
