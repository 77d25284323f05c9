package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// ScenarioIvalt measures the iVALT-compatible surface as iVALT's clients
// use it: a push request by mobile number, a result poll answered pending,
// the device reading and approving the request, and the result poll that
// answers success, end to end per sign-in.
const ScenarioIvalt = "ivalt"

// DefaultIvaltUsers is how many users the ivalt scenario enrolls: each
// takes at most approvalsPerUser+1 sign-ins (DESIGN's push-bombing limit),
// enough for a few seconds' window on a small machine.
const DefaultIvaltUsers = 1000

// ivaltCallsPerSignIn is the HTTP requests of one sign-in: the request,
// two result polls, the device's list and its answer.
const ivaltCallsPerSignIn = 5

// IvaltResult is what the ivalt scenario measured.
type IvaltResult struct {
	// Users is how many users were enrolled, each with a mobile number
	// and one device; EnrollSec how long it took.
	Users     int     `json:"users"`
	EnrollSec float64 `json:"enrollSec"`
	// Workers each sign a user in, in a closed loop; SignIns is how many
	// completed in the measured window, PerSec their rate, RequestsPerSec
	// the HTTP requests that took (ivaltCallsPerSignIn each).
	Workers        int     `json:"workers"`
	SignIns        int64   `json:"signIns"`
	PerSec         float64 `json:"perSec"`
	RequestsPerSec float64 `json:"requestsPerSec"`
	// SignIn is one sign-in's five requests, the push request to the
	// result poll's 200.
	SignIn Latency `json:"signIn"`
	// CPU during the window, in cores, as in ApprovalsResult.
	ServerCPU float64 `json:"serverCPUCores"`
	LoadCPU   float64 `json:"loadCPUCores"`
	OtherCPU  float64 `json:"otherCPUCores"`
	// Errors counts failed sign-ins by kind.
	Errors map[string]int64 `json:"errors,omitempty"`
}

// runIvalt runs the ivalt scenario against o's server: enroll
// o.IvaltUsers users with mobile numbers, then sign them in from
// o.Connections workers for o.Warmup then o.Duration.
func runIvalt(ctx context.Context, o Options, r *Report, logf func(string, ...any)) error {
	c, err := enrollingClient(o, 0)
	if err != nil {
		return err
	}
	res := &IvaltResult{Users: o.IvaltUsers, Workers: o.Connections}
	r.Ivalt = res
	// Mobile numbers are unique in an organization: a run's numbers start
	// at an offset of the clock, so that runs against one server do not
	// collide.
	base := time.Now().UnixNano() / 1000
	register := func(i int) *client.NewUser {
		return &client.NewUser{Mobile: fmt.Sprintf("+4477%08d", (base+int64(i))%1e8), Name: "iVALT user " + strconv.Itoa(i)}
	}
	logf("enrolling %d users with mobile numbers, one device each", o.IvaltUsers)
	start := time.Now()
	users, err := enrollUsers(ctx, c, o.IvaltUsers, o.Parallel*4, register)
	res.EnrollSec = round(time.Since(start).Seconds(), 2)
	if err != nil {
		return err
	}
	mobiles := make(map[*enrolled]string, len(users))
	for i, u := range users {
		mobiles[u] = register(i).Mobile
	}
	logf("  %.1fs", res.EnrollSec)
	logf("signing in through /ivalt: %d workers, %v warm-up, %v measured", o.Connections, o.Warmup, o.Duration)
	key := client.Header{Name: "x-api-key", Value: o.APIKey}
	l := closedLoop(ctx, o, users, func(u *enrolled) error { return ivaltSignIn(c, key, u, mobiles[u]) })
	res.SignIns, res.PerSec, res.SignIn, res.Errors = l.decided, l.perSec, l.cycle, l.errors
	res.RequestsPerSec = round(l.perSec*ivaltCallsPerSignIn, 1)
	res.ServerCPU, res.LoadCPU, res.OtherCPU = l.serverCPU, l.loadCPU, l.otherCPU
	logf("  %d sign-ins, %.0f/s (%.0f requests/s), sign-in p50 %s p99 %s, CPU: server %.2f, load %.2f, other %.2f",
		res.SignIns, res.PerSec, res.RequestsPerSec, FormatUs(res.SignIn.P50), FormatUs(res.SignIn.P99), res.ServerCPU, res.LoadCPU, res.OtherCPU)
	return l.err("--ivalt-users")
}

// ivaltSignIn is one sign-in of u: the push request, a result poll that
// must answer 422 (pending), the device's list and approval, and the
// result poll that must answer 200.
func ivaltSignIn(c *client.Client, key client.Header, u *enrolled, mobile string) error {
	body := []byte(`{"mobile":"` + mobile + `"}`)
	r, err := c.Do("POST", "/ivalt/biometric-auth-request", body, key)
	if err != nil {
		return err
	}
	if r.Status != 200 {
		return ivaltCallFailed("request", r)
	}
	var sent struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(r.Body, &sent); err != nil || sent.RequestID == "" {
		return fmt.Errorf("bench: the request's answer has no request_id: %.80s", r.Body)
	}
	if r, err = c.Do("POST", "/ivalt/biometric-geo-fence-auth-results", body, key); err != nil {
		return err
	} else if r.Status != 422 {
		return ivaltCallFailed("result before the answer", r)
	}
	list, err := c.DeviceApprovals(u.e.Device.DeviceToken, 0)
	if err != nil {
		return err
	}
	i := 0
	for i < len(list) && list[i].ApprovalID != sent.RequestID {
		i++
	}
	if i == len(list) {
		return fmt.Errorf("bench: the device's list lacks %s", sent.RequestID)
	}
	if _, err := c.AnswerApproval(u.e.Device.DeviceToken, sent.RequestID, simulate.NewAnswer(u.e.Key, &list[i], time.Now())); err != nil {
		return err
	}
	if r, err = c.Do("POST", "/ivalt/biometric-geo-fence-auth-results", body, key); err != nil {
		return err
	}
	if r.Status != 200 || !bytes.Contains(r.Body, []byte(`"status":"success"`)) {
		return ivaltCallFailed("result after the approval", r)
	}
	return nil
}

// ivaltCallFailed names the step and the status and code it was answered,
// briefly, for the errors table.
func ivaltCallFailed(step string, r client.Response) error {
	var v struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &v)
	return fmt.Errorf("%s: %d %s", step, r.Status, v.Error.Code)
}

// WriteMarkdown writes the ivalt scenario's figures.
func (a *IvaltResult) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| measure | figure |\n|---|--:|\n")
	fmt.Fprintf(w, "| sign-ins per second through /ivalt (durable, %d workers) | %s/s |\n", a.Workers, formatCount(a.PerSec))
	fmt.Fprintf(w, "| HTTP requests per second (%d per sign-in) | %s/s |\n", ivaltCallsPerSignIn, formatCount(a.RequestsPerSec))
	fmt.Fprintf(w, "| one sign-in (request, pending poll, device list, answer, result poll) p50 / p90 / p99 / max | %s / %s / %s / %s |\n",
		FormatUs(a.SignIn.P50), FormatUs(a.SignIn.P90), FormatUs(a.SignIn.P99), FormatUs(a.SignIn.Max))
	fmt.Fprintf(w, "| CPU during the window: server / load generator / other processes | %.2f / %.2f / %.2f cores |\n", a.ServerCPU, a.LoadCPU, a.OtherCPU)
	fmt.Fprintf(w, "| enrolling %d users with a mobile number and a device each | %.1f s |\n", a.Users, a.EnrollSec)
	if len(a.Errors) > 0 {
		fmt.Fprintf(w, "\nErrors in the window: %s\n", formatErrors(a.Errors))
	}
}
