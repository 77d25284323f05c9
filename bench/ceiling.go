package bench

import (
	"bytes"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// SampleDecision is a validate answer of the documented shape, used as the
// ceiling's body when no real answer was captured. Its size is that of a
// genuine decision of the seed's four values.
const SampleDecision = `{"success":true,"verifiedAction":true,"decisionID":"01KAQ4ZQ5W8Y7V3N2M1K0J9H8G",` +
	`"indicators":{"iv_is_values_collected":true,"iv_is_values_match":true,"iv_values_match_details":{` +
	`"amount":{"matched":true,"field":"total","reason":"match"},"payeeID":{"matched":true,"field":"payee","reason":"match"},` +
	`"accountNumber":{"matched":true,"field":"account","reason":"match"},"notes":{"matched":true,"field":"memo","reason":"match"}},` +
	`"iv_is_biometrics_collected":true,"iv_is_biometrics_match":true,"iv_liveness":true,` +
	`"iv_policy_violations":{"violations":[],"has_violations":false,"total_frames":6,"verified_frames":6},` +
	`"iv_biometrics_info":[{"type":"face","frames":6,"verified":6,"meanSimilarity":0.9,"meanLiveness":0.96,` +
	`"firstTs":1763800000250,"lastTs":1763800001500}],"iv_user_enrolled":true,"iv_spoof_detected":false,` +
	`"idv_matching":false,"driverLicenseCollected":false,"idlive_liveness":false,"regular_liveness":true},"ivScore":9250}`

// Fixed answers of the ceiling to the requests of a transaction other than
// validate, of the sizes countersign's own answers have.
const (
	ceilingSession = `{"csid":"bench-ceiling-session","collectToken":"ct_4Y9kQ2mX7pL1vB8nR3sT6wZ0cF5hJ2dG","expiresAt":1763801800000}`
	ceilingEvents  = `{"accepted":{"fields":0,"frames":3},"pending":3}`
)

// Ceiling is the fastest server a validate could possibly be: fasthttp
// answering every request with one fixed validate-shaped body, with the
// same server settings countersign uses. Measured by the same generator in
// the same run, it is the yardstick the validate throughput is divided by.
// The requests of a transaction get fixed answers of their own (session
// creation 201, an events post 202), so that the same ceiling measures a
// whole transaction's request sequence; it reads every body (fasthttp
// does) and decodes none.
type Ceiling struct {
	body []byte
	srv  *fasthttp.Server
}

// NewCeiling returns a ceiling server answering body (a captured validate
// answer; SampleDecision if empty) as application/json.
func NewCeiling(body []byte) *Ceiling {
	if len(body) == 0 {
		body = []byte(SampleDecision)
	}
	c := &Ceiling{body: append([]byte(nil), body...)}
	c.srv = &fasthttp.Server{
		Handler: c.handle,
		// As countersign's server: same name, header buffer, timeouts and
		// body limit, so the ceiling differs only by doing no work.
		Name:                         "countersign",
		ReadBufferSize:               8 << 10,
		ReadTimeout:                  10 * time.Second,
		WriteTimeout:                 10 * time.Second,
		IdleTimeout:                  120 * time.Second,
		MaxRequestBodySize:           4 << 20,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
	}
	return c
}

func (c *Ceiling) handle(ctx *fasthttp.RequestCtx) {
	// The headers countersign sends with a validate answer.
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderVary, "Accept-Encoding")
	switch path := ctx.Path(); {
	case string(path) == "/v1/sessions":
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.SetBodyString(ceilingSession)
	case bytes.HasSuffix(path, []byte("/events")):
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetBodyString(ceilingEvents)
	default:
		ctx.SetBody(c.body)
	}
}

// Handler returns the ceiling's request handler.
func (c *Ceiling) Handler() fasthttp.RequestHandler { return c.handle }

// Body returns the bytes the ceiling answers.
func (c *Ceiling) Body() []byte { return c.body }

// Serve answers requests on ln until Shutdown.
func (c *Ceiling) Serve(ln net.Listener) error { return c.srv.Serve(ln) }

// Shutdown stops serving and closes open connections.
func (c *Ceiling) Shutdown() error { return c.srv.Shutdown() }
