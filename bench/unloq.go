package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// ScenarioUnloq measures the UNLOQ-compatible surface's held
// authenticate: --held-polls requests held at once, one per user, the
// server's memory while they are held, and how soon a held request answers
// after the user's device decides.
const ScenarioUnloq = "unloq"

// unloqHold bounds one held authenticate on the generator's side: the
// server's UNLOQ wait (30 s by default) and a margin.
const unloqHold = 45 * time.Second

// UnloqResult is what the unloq scenario measured.
type UnloqResult struct {
	// Users is how many users were enrolled, each with one device, and
	// EnrollSec how long that took.
	Users     int     `json:"users"`
	EnrollSec float64 `json:"enrollSec"`
	// Held is how many authenticate requests the server held at once (its
	// countersign_held_requests gauge), HoldSec how long sending them took
	// until all were held.
	Held    int     `json:"held"`
	HoldSec float64 `json:"holdSec"`
	// RSS is the server's resident set size before the requests, with
	// them held, and its peak (VmHWM) at the end.
	RSSBefore int64 `json:"rssBeforeBytes"`
	RSSHeld   int64 `json:"rssHeldBytes"`
	RSSPeak   int64 `json:"rssPeakBytes"`
	// Decided is how many held requests were decided by their device, one
	// at a time; Answer is from the device's answer being sent to the
	// held authenticate's 200, AnswerAfterAck from the device answer's own
	// 200 (its durable commit left out; 0 when the authenticate answered
	// first).
	Decided        int     `json:"decided"`
	Answer         Latency `json:"answer"`
	AnswerAfterAck Latency `json:"answerAfterAck"`
	// Errors counts failures by kind.
	Errors map[string]int64 `json:"errors,omitempty"`
}

// heldAnswer is one held authenticate's outcome.
type heldAnswer struct {
	at     time.Time
	status int
	err    error
}

// runUnloq enrolls HeldPolls users, holds one POST /unloq/v1/authenticate
// (events off, Bearer key) for each, reads the server's RSS, then decides
// WakeSamples of them one at a time from their devices and times each
// answer. The rest are left to the server's wait, which answers them
// APPROVAL.TIMEOUT.
func runUnloq(ctx context.Context, o Options, r *Report, logf func(string, ...any)) error {
	if o.AdminKey == "" {
		return errors.New("bench: the unloq scenario needs the organization's admin key")
	}
	res := &UnloqResult{Users: o.HeldPolls, Errors: map[string]int64{}}
	r.Unloq = res
	c, err := client.NewClient(client.Config{Addr: o.Addr, APIKey: o.APIKey, AdminKey: o.AdminKey,
		Timeout: o.Timeout, MaxConns: 2*o.Parallel*4 + 64})
	if err != nil {
		return err
	}
	holds, err := client.NewClient(client.Config{Addr: o.Addr, APIKey: o.APIKey, Timeout: unloqHold, MaxConns: o.HeldPolls + 64})
	if err != nil {
		return err
	}
	users, enrollSec, err := enrollTimed(ctx, c, o, logf)
	res.EnrollSec = enrollSec
	if err != nil {
		return err
	}
	if s, err := ReadProc(o.ServerPID); err == nil {
		res.RSSBefore = s.RSS
	}
	logf("holding %d authenticate requests", len(users))
	bearer := client.Header{Name: "Authorization", Value: "Bearer " + o.APIKey}
	answers := make([]chan heldAnswer, len(users))
	var wg sync.WaitGroup
	start := time.Now()
	for i, u := range users {
		answers[i] = make(chan heldAnswer, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := holds.Do("POST", "/unloq/v1/authenticate", []byte(`{"unloq_id":"`+u.user+`","ip":"127.0.0.1"}`), bearer)
			answers[i] <- heldAnswer{time.Now(), resp.Status, err}
		}()
		if i%500 == 499 {
			time.Sleep(20 * time.Millisecond) // let the server accept in steps
		}
	}
	defer wg.Wait()
	if res.Held, err = waitHeld(ctx, c, len(users), 20*time.Second); err != nil {
		return err
	}
	res.HoldSec = round(time.Since(start).Seconds(), 2)
	logf("  %d held in %.1fs", res.Held, res.HoldSec)
	if s, err := ReadProc(o.ServerPID); err == nil {
		res.RSSHeld = s.RSS
	}
	if res.Held < len(users) {
		return fmt.Errorf("bench: the server holds %d of %d authenticate requests after 20s", res.Held, len(users))
	}
	logf("deciding %d of them one at a time from their devices", o.WakeSamples)
	ans, ack := newHistogram(), newHistogram()
	n := min(o.WakeSamples, len(users))
	for k := 0; k < n && ctx.Err() == nil; k++ {
		i := k * len(users) / n // spread over the users
		if err := decideHeld(c, users[i], answers[i], ans, ack); err != nil {
			res.Errors[err.Error()]++
			continue
		}
		res.Decided++
	}
	res.Answer, res.AnswerAfterAck = summarize(ans), summarize(ack)
	res.Answer.HDR, res.AnswerAfterAck.HDR = "", ""
	if s, err := ReadProc(o.ServerPID); err == nil {
		res.RSSPeak = s.HWM
	}
	logf("  answer p50 %s p99 %s (after the device's 200: p50 %s p99 %s), %d decided",
		FormatUs(res.Answer.P50), FormatUs(res.Answer.P99), FormatUs(res.AnswerAfterAck.P50), FormatUs(res.AnswerAfterAck.P99), res.Decided)
	logf("waiting for the undecided requests to time out")
	return nil
}

// decideHeld approves u's held authenticate from u's device and records
// from the answer to the authenticate's 200.
func decideHeld(c *client.Client, u *enrolled, answer <-chan heldAnswer, ans, ack *hdrhistogram.Histogram) error {
	list, err := c.DeviceApprovals(u.e.Device.DeviceToken, 0)
	if err != nil || len(list) == 0 {
		return fmt.Errorf("the device's list: %d approvals, %v", len(list), err)
	}
	a := simulate.NewAnswer(u.e.Key, &list[0], time.Now())
	sent := time.Now()
	_, err = c.AnswerApproval(u.e.Device.DeviceToken, list[0].ApprovalID, a)
	acked := time.Now()
	if err != nil {
		return fmt.Errorf("the device's answer: %v", err)
	}
	got := <-answer
	if got.err != nil || got.status != 200 {
		return fmt.Errorf("the held authenticate: %d %v", got.status, got.err)
	}
	recordLatency(ans, got.at.Sub(sent))
	recordLatency(ack, max(got.at.Sub(acked), 0))
	return nil
}

// WriteMarkdown writes the unloq scenario's table.
func (u *UnloqResult) WriteMarkdown(w io.Writer) {
	mb := func(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 0, 64) + " MB" }
	fmt.Fprintf(w, "| measure | value |\n|---|--:|\n")
	fmt.Fprintf(w, "| users enrolled | %d (%.1fs) |\n", u.Users, u.EnrollSec)
	fmt.Fprintf(w, "| authenticate requests held at once | %d (%.1fs to hold) |\n", u.Held, u.HoldSec)
	fmt.Fprintf(w, "| server RSS before / held / peak | %s / %s / %s |\n", mb(u.RSSBefore), mb(u.RSSHeld), mb(u.RSSPeak))
	fmt.Fprintf(w, "| decided from the device | %d |\n", u.Decided)
	fmt.Fprintf(w, "| decision -> answer p50 / p99 / max | %s / %s / %s |\n", FormatUs(u.Answer.P50), FormatUs(u.Answer.P99), FormatUs(u.Answer.Max))
	fmt.Fprintf(w, "| after the device's 200, p50 / p99 | %s / %s |\n", FormatUs(u.AnswerAfterAck.P50), FormatUs(u.AnswerAfterAck.P99))
	for k, n := range u.Errors {
		fmt.Fprintf(w, "| error: %s | %d |\n", k, n)
	}
}
