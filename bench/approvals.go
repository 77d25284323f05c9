package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// ScenarioApprovals measures the approval engine: approvals created and
// decided per second (durable), and many device long polls held at once
// with the server's memory and the wake-up latency of a decided approval.
const ScenarioApprovals = "approvals"

// Defaults of the approvals scenario.
const (
	// DefaultHeldPolls is how many device long polls are held at once:
	// one per enrolled device, each of its own user.
	DefaultHeldPolls = 10000
	// DefaultWakeSamples is how many approvals are decided, one device at
	// a time, while the polls are held.
	DefaultWakeSamples = 1000
	// approvalsPerUser is how many approvals the throughput phase creates
	// for one user: DESIGN's push-bombing limit allows 10 per user per 10
	// minutes, and the wake-up phase has used one.
	approvalsPerUser = 9
	// DefaultHeldWait is the device polls' wait, as the app asks. The
	// polls are released at the end of the held phase by waiting for
	// their answers, so a shorter wait makes a short run shorter.
	DefaultHeldWait = 25 * time.Second
	heldWait        = 25 // seconds: the requesters' wait
)

// ApprovalsResult is what the approvals scenario measured.
type ApprovalsResult struct {
	// Users is how many users were enrolled, each with one device.
	Users int `json:"users"`
	// EnrollSec is how long enrolling them took (user, activation code,
	// activation: three durable requests each).
	EnrollSec float64 `json:"enrollSec"`

	// Throughput: workers each create an approval, read it from the
	// device's list, sign and post the answer, in a closed loop.
	Workers int `json:"workers"`
	// Decided is how many approvals were created and decided (approved)
	// in the measured window; PerSec the rate.
	Decided int64   `json:"decided"`
	PerSec  float64 `json:"perSec"`
	// Cycle is one approval's three requests, create to the answer's 200.
	Cycle Latency `json:"cycle"`
	// ServerCPU is the server's CPU during the window, in cores; LoadCPU
	// the generator's (this process); OtherCPU what the rest of the
	// machine took (busy and interrupt time less both, less kernel
	// threads): on a shared machine, how far the figure can be trusted.
	ServerCPU float64 `json:"serverCPUCores"`
	LoadCPU   float64 `json:"loadCPUCores"`
	OtherCPU  float64 `json:"otherCPUCores"`
	// Errors counts failed cycles by kind.
	Errors map[string]int64 `json:"errors,omitempty"`

	// HeldPolls is how many device long polls the server held at once at
	// the peak (its countersign_held_requests gauge, less the requesters').
	HeldPolls int `json:"heldPolls"`
	// RSS is the server's resident set size with the polls held, before
	// the wake-ups (RSSBefore: before the polls) and its peak (HWM).
	RSSBefore int64 `json:"rssBeforeBytes"`
	RSSHeld   int64 `json:"rssHeldBytes"`
	RSSPeak   int64 `json:"rssPeakBytes"`
	// Wake is from the device's answer being sent to the requester's held
	// GET /v1/approvals/{id}?wait= being answered; WakeAfterAck from the
	// answer's own 200 (the store's sync left out; 0 when the requester
	// was answered first).
	Wake         Latency `json:"wake"`
	WakeAfterAck Latency `json:"wakeAfterAck"`
	// Delivery is from the create being acknowledged to the device's held
	// poll answering it (negative values, a poll answered first, count 0).
	Delivery Latency `json:"delivery"`
}

// enrolled is one simulated user with its device.
type enrolled struct {
	user string
	e    *simulate.Enrolled
	used atomic.Int32 // approvals created for the user
}

// runApprovals runs the approvals scenario against o's server: enroll
// HeldPolls users, hold a poll for each device and decide WakeSamples
// approvals while they are held, then release them and run the closed
// loop for o.Duration.
func runApprovals(ctx context.Context, o Options, r *Report, logf func(string, ...any)) error {
	c, err := enrollingClient(o, o.HeldPolls)
	if err != nil {
		return err
	}
	res := &ApprovalsResult{Users: o.HeldPolls, Workers: o.Connections}
	r.Approvals = res
	logf("enrolling %d users, one device each", o.HeldPolls)
	start := time.Now()
	users, err := enrollUsers(ctx, c, o.HeldPolls, o.Parallel*4, nil)
	res.EnrollSec = round(time.Since(start).Seconds(), 2)
	if err != nil {
		return err
	}
	logf("  %.1fs", res.EnrollSec)
	if err := heldPhase(ctx, c, o, users, res, logf); err != nil {
		return err
	}
	return throughputPhase(ctx, c, o, users, res, logf)
}

// enrollingClient is the client of a scenario that enrolls its own users
// (so it needs the admin key), with room for held connections besides
// two per worker.
func enrollingClient(o Options, held int) (*client.Client, error) {
	if o.AdminKey == "" {
		return nil, fmt.Errorf("bench: the %s scenario needs the organization's admin key", o.Scenario)
	}
	return client.NewClient(client.Config{Addr: o.Addr, APIKey: o.APIKey, AdminKey: o.AdminKey,
		Timeout: o.Timeout, MaxConns: held + 2*o.Connections + 64})
}

// enrollTimed enrolls o.HeldPolls users and says how long it took, in
// seconds.
func enrollTimed(ctx context.Context, c *client.Client, o Options, logf func(string, ...any)) ([]*enrolled, float64, error) {
	logf("enrolling %d users, one device each", o.HeldPolls)
	start := time.Now()
	users, err := enrollUsers(ctx, c, o.HeldPolls, o.Parallel*4, nil)
	return users, round(time.Since(start).Seconds(), 2), err
}

// enrollUsers registers n users, each with an activated device, from
// parallel clients; register, when not nil, gives the i-th user's
// registration (its id is set).
func enrollUsers(ctx context.Context, c *client.Client, n, parallel int, register func(i int) *client.NewUser) ([]*enrolled, error) {
	users := make([]*enrolled, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	run := "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				u := &enrolled{user: run + "-" + strconv.Itoa(i)}
				var err error
				if register == nil {
					u.e, err = simulate.Enroll(c, u.user)
				} else {
					nu := register(i)
					nu.UserID = u.user
					u.e, err = simulate.EnrollUser(c, nu)
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("bench: enroll %s: %w", u.user, err) })
					next.Store(int64(n))
					return
				}
				users[i] = u
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return users, first
}

// delivery is an approval a device's held poll answered.
type delivery struct {
	p  client.PendingApproval
	at time.Time
}

// heldPhase holds one long poll per device, reads the server's memory,
// then decides WakeSamples approvals one device at a time: the backend
// creates one and holds GET /v1/approvals/{id}?wait=, the device's held
// poll delivers it, the device answers, and the wake-up is timed to the
// backend's answer.
func heldPhase(ctx context.Context, c *client.Client, o Options, users []*enrolled, res *ApprovalsResult, logf func(string, ...any)) error {
	if s, err := ReadProc(o.ServerPID); err == nil {
		res.RSSBefore = s.RSS
	}
	pctx, stopPolls := context.WithCancel(ctx)
	deliveries := make([]chan delivery, len(users))
	resume := make([]chan struct{}, len(users))
	var wg sync.WaitGroup
	var pollErrs atomic.Int64
	var lastErr atomic.Value
	logf("holding %d device long polls", len(users))
	for i, u := range users {
		deliveries[i], resume[i] = make(chan delivery, 1), make(chan struct{}, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				list, err := c.DeviceApprovals(u.e.Device.DeviceToken, int(o.HeldWait/time.Second))
				at := time.Now()
				if err != nil {
					if pctx.Err() == nil {
						pollErrs.Add(1)
						lastErr.Store(err)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				if len(list) == 0 {
					continue
				}
				deliveries[i] <- delivery{list[0], at}
				select { // the answer is posted before the next poll
				case <-resume[i]:
				case <-pctx.Done():
				}
			}
		}()
		if i%500 == 499 {
			time.Sleep(20 * time.Millisecond) // let the server accept in steps
		}
	}
	defer func() {
		stopPolls()
		wg.Wait()
	}()
	// Wait until the server holds them all (its gauge), at most 60 s.
	held, err := waitHeld(ctx, c, len(users), 60*time.Second)
	if err != nil {
		return err
	}
	res.HeldPolls = held
	logf("  %d held (%d poll errors)", res.HeldPolls, pollErrs.Load())
	if res.HeldPolls < len(users) {
		e, _ := lastErr.Load().(error)
		return fmt.Errorf("bench: the server holds %d of %d device polls after 60s (last poll error: %v)", res.HeldPolls, len(users), e)
	}
	if s, err := ReadProc(o.ServerPID); err == nil {
		res.RSSHeld = s.RSS
	}
	logf("deciding %d approvals one at a time while the polls are held", o.WakeSamples)
	wake, ack, deliv := newHistogram(), newHistogram(), newHistogram()
	for k := 0; k < o.WakeSamples && k < len(users) && ctx.Err() == nil; k++ {
		i := k * len(users) / min(o.WakeSamples, len(users)) // spread over the devices
		if err := wakeOnce(c, users[i], deliveries[i], resume[i], wake, ack, deliv); err != nil {
			return err
		}
	}
	res.Wake, res.WakeAfterAck, res.Delivery = summarize(wake), summarize(ack), summarize(deliv)
	res.Wake.HDR, res.WakeAfterAck.HDR, res.Delivery.HDR = "", "", ""
	if s, err := ReadProc(o.ServerPID); err == nil {
		res.RSSPeak = s.HWM
	}
	logf("  wake-up p50 %s p99 %s (after the answer's 200: p50 %s p99 %s); delivery p99 %s",
		FormatUs(res.Wake.P50), FormatUs(res.Wake.P99), FormatUs(res.WakeAfterAck.P50), FormatUs(res.WakeAfterAck.P99), FormatUs(res.Delivery.P99))
	return nil
}

// wakeOnce decides one approval of u and records its latencies.
func wakeOnce(c *client.Client, u *enrolled, deliveries <-chan delivery, resume chan<- struct{}, wake, ack, deliv *hdrhistogram.Histogram) error {
	u.used.Add(1)
	created, err := c.CreateApproval(approvalFor(u.user))
	acked := time.Now()
	if err != nil {
		return fmt.Errorf("bench: create an approval: %w", err)
	}
	type answer struct {
		at  time.Time
		st  *client.ApprovalStatus
		err error
	}
	held := make(chan answer, 1)
	go func() {
		st, err := c.Approval(created.ApprovalID, heldWait)
		held <- answer{time.Now(), st, err}
	}()
	var d delivery
	select {
	case d = <-deliveries:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("bench: no device poll delivered %s within 10s", created.ApprovalID)
	}
	recordLatency(deliv, max(d.at.Sub(acked), 0))
	// The requester's GET must be held before the device answers, or the
	// wake-up would not be one: it was sent before the delivery was
	// awaited; give the server a moment to park it.
	time.Sleep(2 * time.Millisecond)
	ans := simulate.NewAnswer(u.e.Key, &d.p, time.Now())
	sent := time.Now()
	_, err = c.AnswerApproval(u.e.Device.DeviceToken, d.p.ApprovalID, ans)
	answered := time.Now()
	resume <- struct{}{}
	if err != nil {
		return fmt.Errorf("bench: the device's answer: %w", err)
	}
	a := <-held
	if a.err != nil || a.st.Status != "approved" {
		return fmt.Errorf("bench: the requester's long poll: %v %v", a.st, a.err)
	}
	recordLatency(wake, a.at.Sub(sent))
	recordLatency(ack, max(a.at.Sub(answered), 0))
	return nil
}

func approvalFor(user string) *client.ApprovalRequest {
	return &client.ApprovalRequest{UserID: user, Message: "Approve the transfer of EUR 35.00 to payee 6?",
		Values: []client.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "6"}}}
}

// waitHeld waits until the server's gauge says n requests are held, at
// most within, and returns the last reading.
func waitHeld(ctx context.Context, c *client.Client, n int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		held, err := heldRequests(c)
		if err != nil || held >= n || time.Now().After(deadline) || ctx.Err() != nil {
			return held, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// heldRequests reads the server's countersign_held_requests gauge.
func heldRequests(c *client.Client) (int, error) {
	r, err := c.Do("GET", "/metrics", nil)
	if err != nil {
		return 0, err
	}
	const name = "\ncountersign_held_requests "
	i := bytes.Index(r.Body, []byte(name))
	if i < 0 {
		return 0, errors.New("bench: /metrics has no countersign_held_requests")
	}
	rest := r.Body[i+len(name):]
	j := 0
	for j < len(rest) && rest[j] != '\n' {
		j++
	}
	v, err := strconv.ParseFloat(string(rest[:j]), 64)
	return int(v), err
}

// throughputPhase runs o.Connections workers for o.Warmup then o.Duration,
// each taking users in turn and, for each, creating an approval, reading
// it from the device's list (GET /v1/device/approvals, not held), signing
// and posting the answer, up to approvalsPerUser times.
func throughputPhase(ctx context.Context, c *client.Client, o Options, users []*enrolled, res *ApprovalsResult, logf func(string, ...any)) error {
	logf("creating and deciding approvals: %d workers, %v warm-up, %v measured", o.Connections, o.Warmup, o.Duration)
	l := closedLoop(ctx, o, users, func(u *enrolled) error { return cycleOnce(c, u) })
	res.Decided, res.PerSec, res.Cycle, res.Errors = l.decided, l.perSec, l.cycle, l.errors
	res.ServerCPU, res.LoadCPU, res.OtherCPU = l.serverCPU, l.loadCPU, l.otherCPU
	logf("  %d decided, %.0f/s, cycle p50 %s p99 %s, CPU: server %.2f, load %.2f, other %.2f", res.Decided, res.PerSec,
		FormatUs(res.Cycle.P50), FormatUs(res.Cycle.P99), res.ServerCPU, res.LoadCPU, res.OtherCPU)
	return l.err("--held-polls")
}

// loopResult is what closedLoop measured in its window.
type loopResult struct {
	decided                      int64
	perSec                       float64
	cycle                        Latency
	serverCPU, loadCPU, otherCPU float64
	errors                       map[string]int64
	exhausted                    bool
}

// err is the loop's failure: every user at the per-user approval limit
// before the window ended; flag is the option that enrolls more.
func (l *loopResult) err(flag string) error {
	if l.exhausted {
		return fmt.Errorf("bench: every user reached the per-user approval limit before the window ended, so the rate is understated: enroll more (%s)", flag)
	}
	return nil
}

// closedLoop runs o.Connections workers for o.Warmup then o.Duration, each
// taking users in turn and running one cycle of the user, up to
// approvalsPerUser+1 approvals a user (DESIGN's push-bombing limit), and
// measures the cycles that started and ended in the window and the CPU
// taken meanwhile.
func closedLoop(ctx context.Context, o Options, users []*enrolled, once func(*enrolled) error) *loopResult {
	var next atomic.Int64
	start := time.Now()
	from, to := start.Add(o.Warmup), start.Add(o.Warmup+o.Duration)
	var mu sync.Mutex
	cycle := newHistogram()
	errs := map[string]int64{}
	var decided atomic.Int64
	var exhausted atomic.Bool
	var wg sync.WaitGroup
	var cpuFrom, cpuTo, selfFrom, selfTo ProcSample
	var mFrom, mTo MachineSample
	self := os.Getpid()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		time.Sleep(time.Until(from))
		cpuFrom, _ = ReadProc(o.ServerPID)
		selfFrom, _ = ReadProc(self)
		mFrom, _ = ReadMachine()
		time.Sleep(time.Until(to))
		cpuTo, _ = ReadProc(o.ServerPID)
		selfTo, _ = ReadProc(self)
		mTo, _ = ReadMachine()
	}()
	for range o.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHistogram()
			local := map[string]int64{}
			for ctx.Err() == nil && time.Now().Before(to) {
				u := users[int(next.Add(1)-1)%len(users)]
				if u.used.Add(1) > approvalsPerUser+1 {
					if next.Load() > int64(len(users)*(approvalsPerUser+1)) {
						exhausted.Store(true)
						break
					}
					continue
				}
				t0 := time.Now()
				err := once(u)
				t1 := time.Now()
				if t0.Before(from) {
					continue
				}
				if t1.After(to) {
					break
				}
				if err != nil {
					local[errorKind(err)]++
					continue
				}
				decided.Add(1)
				recordLatency(h, t1.Sub(t0))
			}
			mu.Lock()
			cycle.Merge(h)
			for k, v := range local {
				errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	<-sampled
	l := &loopResult{decided: decided.Load(), exhausted: exhausted.Load()}
	l.perSec = round(float64(l.decided)/o.Duration.Seconds(), 1)
	l.cycle = summarize(cycle)
	l.cycle.HDR = ""
	cores := func(a, b time.Duration) float64 { return (b - a).Seconds() / o.Duration.Seconds() }
	if cpuTo.CPU > cpuFrom.CPU {
		l.serverCPU = round(cores(cpuFrom.CPU, cpuTo.CPU), 2)
		l.loadCPU = round(cores(selfFrom.CPU, selfTo.CPU), 2)
		other := cores(mFrom.Busy+mFrom.IRQ-mFrom.KernelThreads, mTo.Busy+mTo.IRQ-mTo.KernelThreads) - l.serverCPU - l.loadCPU
		l.otherCPU = round(max(other, 0), 2)
	}
	if len(errs) > 0 {
		l.errors = errs
	}
	return l
}

// cycleOnce creates an approval for u, reads it as u's device, and
// approves it.
func cycleOnce(c *client.Client, u *enrolled) error {
	created, err := c.CreateApproval(approvalFor(u.user))
	if err != nil {
		return err
	}
	list, err := c.DeviceApprovals(u.e.Device.DeviceToken, 0)
	if err != nil {
		return err
	}
	for i := range list {
		if list[i].ApprovalID != created.ApprovalID {
			continue
		}
		st, err := c.AnswerApproval(u.e.Device.DeviceToken, created.ApprovalID, simulate.NewAnswer(u.e.Key, &list[i], time.Now()))
		if err != nil {
			return err
		}
		if st.Status != "approved" {
			return fmt.Errorf("bench: approval %s %s", created.ApprovalID, st.Status)
		}
		return nil
	}
	return fmt.Errorf("bench: the device's list lacks %s", created.ApprovalID)
}

// WriteMarkdown writes the approvals scenario's figures beside
// DESIGN's goals.
func (a *ApprovalsResult) WriteMarkdown(w io.Writer) {
	mb := func(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MB" }
	fmt.Fprintf(w, "| measure | figure | goal |\n|---|--:|--:|\n")
	fmt.Fprintf(w, "| approvals created and decided per second (durable, %d workers) | %s/s | >= 5,000/s %s |\n", a.Workers, formatCount(a.PerSec), metText(a.PerSec >= 5000))
	fmt.Fprintf(w, "| one approval's cycle (create, device list, answer) p50 / p99 | %s / %s | |\n", FormatUs(a.Cycle.P50), FormatUs(a.Cycle.P99))
	fmt.Fprintf(w, "| CPU during the window: server / load generator / other processes | %.2f / %.2f / %.2f cores | |\n", a.ServerCPU, a.LoadCPU, a.OtherCPU)
	fmt.Fprintf(w, "| device long polls held at once | %d | 10,000 |\n", a.HeldPolls)
	fmt.Fprintf(w, "| server RSS with them held (before: %s; peak %s) | %s | < 300 MB %s |\n", mb(a.RSSBefore), mb(a.RSSPeak), mb(a.RSSHeld), metText(a.RSSHeld > 0 && a.RSSHeld < 300<<20))
	fmt.Fprintf(w, "| wake-up, device answer sent -> requester's long poll answered, p50 / p99 (%d) | %s / %s | p99 <= 5 ms %s |\n", a.Wake.Count, FormatUs(a.Wake.P50), FormatUs(a.Wake.P99), metText(a.Wake.P99 <= 5000))
	fmt.Fprintf(w, "| the same from the answer's 200, p50 / p99 | %s / %s | |\n", FormatUs(a.WakeAfterAck.P50), FormatUs(a.WakeAfterAck.P99))
	fmt.Fprintf(w, "| delivery, create acknowledged -> device's held poll answered, p50 / p99 | %s / %s | |\n", FormatUs(a.Delivery.P50), FormatUs(a.Delivery.P99))
	fmt.Fprintf(w, "| enrolling %d users with a device each | %.1f s | |\n", a.Users, a.EnrollSec)
	if len(a.Errors) > 0 {
		fmt.Fprintf(w, "\nErrors in the window: %s\n", formatErrors(a.Errors))
	}
}
