package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// cmdSimulate plays client SDK scenarios against a running server and
// prints each decision.
func cmdSimulate(args []string, e *env) error {
	c := newCommand("simulate", "countersign simulate --cid CID --apikey KEY [--addr URL] [--scenario NAME|all] [--n N] [--gzip]\n"+
		"       countersign simulate --authenticator --admin-key KEY --api-key KEY [--addr URL] [--scenario NAME|all]",
		"Plays a client SDK and a backend against a running server: each scenario starts a session, sends the "+
			"form values and synthetic 512-d face frames, validates, and checks that countersign concluded what "+
			"it should. Scenarios: "+strings.Join(simulate.ScenarioNames(), ", ")+". A scenario about an enrolled "+
			"user enrolls the user first. Prints one row per decision (verifiedAction, ivScore, violations) and "+
			"exits 1 if any decision is not the expected one. "+
			"With --authenticator it plays an operator, a backend and the authenticator app instead: each scenario "+
			"registers a user, activates a device with a new Ed25519 key, asks for an approval, long-polls it from "+
			"the device and answers it, signed, then checks what the backend's long poll is answered. Scenarios: "+
			strings.Join(simulate.AuthScenarioNames(), ", ")+". It replaces the organization's rule set (PUT "+
			"/admin/v1/rules) with one whose fences and windows apply to its own users only; against a server "+
			"that does not serve rules, the rules scenarios are skipped.")
	c.examples = "  countersign simulate --cid cid_... --apikey csk_...                 # every scenario once\n" +
		"  countersign simulate --authenticator --admin-key csk_... --api-key csk_...\n" +
		"  countersign simulate --cid cid_... --apikey csk_... --scenario photo --n 3 --gzip\n"
	addr := c.String("addr", "URL", "http://127.0.0.1:8080", "server base URL (or HOST:PORT)")
	cid := c.String("cid", "CID", "", "the organization's client id (required)")
	apiKey := c.String("apikey", "KEY", "", "the organization's API key (required)")
	apiKey2 := c.String("api-key", "KEY", "", "the same as --apikey")
	adminKey := c.String("admin-key", "KEY", "", "the organization's admin key (--authenticator)")
	authenticator := c.Bool("authenticator", false, "play the authenticator app's scenarios instead of the SDK's")
	scenario := c.String("scenario", "NAME|all", "all", "scenario to play, or a comma-separated list, or all")
	n := c.Int("n", "N", 1, "rounds; each round uses a new user")
	gz := c.Bool("gzip", false, "gzip the event bodies")
	dim := c.Int("embedding-dim", "D", simulate.DefaultDim, "embedding components (the server's --embedding-dim)")
	seed := c.Int("seed", "N", 1, "seed of the synthetic frames")
	runID := c.String("run-id", "ID", "", "prefix of the simulated csids and user ids (default: from the clock)")
	wait := c.Duration("wait", "DURATION", 30*time.Second, "how long to keep asking while validate answers processing")
	timeout := c.Duration("timeout", "DURATION", 10*time.Second, "timeout of one HTTP exchange")
	insecure := c.Bool("insecure", false, "accept any server certificate (https with a dev certificate)")
	if err := e.parse(c, args); err != nil {
		return err
	}
	*apiKey = cmp.Or(*apiKey, *apiKey2)
	if *authenticator {
		return simulateAuthenticator(e, *addr, *adminKey, *apiKey, *scenario, *runID, *timeout, *insecure)
	}
	if *cid == "" || *apiKey == "" {
		return usagef("--cid and --apikey are required (countersign init printed them)")
	}
	if *n < 1 || *dim < 1 {
		return usagef("--n and --embedding-dim must be positive")
	}
	var scenarios []*simulate.Scenario
	if *scenario == "all" {
		scenarios = simulate.Scenarios
	} else {
		for _, name := range strings.Split(*scenario, ",") {
			s, ok := simulate.ScenarioByName(strings.TrimSpace(name))
			if !ok {
				return usagef("unknown scenario %q (known: %s, all)", name, strings.Join(simulate.ScenarioNames(), ", "))
			}
			scenarios = append(scenarios, s)
		}
	}
	cfg := client.Config{Addr: *addr, CID: *cid, APIKey: *apiKey, Gzip: *gz, Timeout: *timeout, MaxWait: *wait}
	if *insecure {
		cfg.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for explicitly, for dev certificates
	}
	sdk, err := client.NewClient(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sim := simulate.NewSimulator(sdk, *runID, *dim, uint64(*seed))
	start := time.Now()
	outs := sim.RunAll(ctx, scenarios, *n)
	if err := simulate.WriteTable(e.stdout, outs); err != nil {
		return err
	}
	failed := 0
	for _, o := range outs {
		if o.Err != nil {
			failed++
		}
	}
	fmt.Fprintf(e.stdout, "\n%d decisions in %v, %d not as expected\n", len(outs), time.Since(start).Round(time.Millisecond), failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios did not end as expected", failed, len(outs))
	}
	return ctx.Err()
}

// simulateAuthenticator plays the authenticator scenarios and prints a row
// for each, then how many were not as expected.
func simulateAuthenticator(e *env, addr, adminKey, apiKey, scenario, runID string, timeout time.Duration, insecure bool) error {
	if adminKey == "" || apiKey == "" {
		return usagef("--authenticator needs --admin-key and --api-key (countersign init printed them)")
	}
	scenarios := simulate.AuthScenarios
	if scenario != "all" {
		scenarios = nil
		for _, name := range strings.Split(scenario, ",") {
			s, ok := simulate.AuthScenarioByName(strings.TrimSpace(name))
			if !ok {
				return usagef("unknown authenticator scenario %q (known: %s, all)", name, strings.Join(simulate.AuthScenarioNames(), ", "))
			}
			scenarios = append(scenarios, s)
		}
	}
	cfg := client.Config{Addr: addr, APIKey: apiKey, AdminKey: adminKey, Timeout: timeout}
	if insecure {
		cfg.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for explicitly, for dev certificates
	}
	c, err := client.NewClient(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	outs, err := simulate.NewAuthenticator(c, runID).RunAll(ctx, scenarios)
	if err != nil {
		return err
	}
	if err := simulate.WriteAuthTable(e.stdout, outs); err != nil {
		return err
	}
	failed, skipped := 0, 0
	for _, o := range outs {
		switch {
		case o.Skipped != "":
			skipped++
		case o.Err != nil:
			failed++
		}
	}
	fmt.Fprintf(e.stdout, "\n%d scenarios in %v, %d skipped, %d not as expected\n", len(outs), time.Since(start).Round(time.Millisecond), skipped, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d authenticator scenarios did not end as expected", failed, len(outs))
	}
	return nil
}
