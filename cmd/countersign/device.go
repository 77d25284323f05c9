package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/client"
)

// The app countersign device plays says this about itself; the platform
// and version are what the device-trust rule checks.
const (
	devicePlatform   = "ios"
	deviceAppVersion = "2.4.0"
	deviceModel      = "countersign device (command line)"
)

// phoneState is what an authenticator app keeps on the phone after
// activation, in the --state file: the device's token and private key.
// The file is the phone's secure storage here: written with mode 0600, and
// only for trying countersign by hand (a real app keeps both in the
// platform's keystore).
type phoneState struct {
	Addr        string `json:"addr"`
	DeviceID    string `json:"deviceID"`
	UserID      string `json:"userID"`
	DeviceToken string `json:"deviceToken"`
	PrivateKey  []byte `json:"privateKey"` // ed25519.PrivateKey, base64 in the file
}

// cmdDevice plays one user's authenticator app: activate, then answer.
func cmdDevice(args []string, e *env) error {
	const synopsis = "countersign device activate --code CODE --state FILE [--addr URL]\n" +
		"       countersign device answer --state FILE [--deny] [--n N] [--for DURATION]"
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(e.stdout, "Usage: %s\n\nPlays one user's authenticator app against a running server, to try the approval surfaces by hand.\n"+
				"Run 'countersign device activate --help' and 'countersign device answer --help' for the flags.\n", synopsis)
			return nil
		}
		return usagef("missing subcommand: %s", synopsis)
	}
	switch args[0] {
	case "activate":
		return cmdDeviceActivate(args[1:], e)
	case "answer":
		return cmdDeviceAnswer(args[1:], e)
	}
	return usagef("unknown subcommand %q (known: activate, answer)", args[0])
}

func cmdDeviceActivate(args []string, e *env) error {
	c := newCommand("device activate", "countersign device activate --code CODE --state FILE [--addr URL]",
		"Activates a new device for the user an operator's activation code names (POST /admin/v1/users/{userID}/activation-codes "+
			"makes one), with a new Ed25519 key, as the authenticator app does on a phone. The device's token and private key "+
			"are written to FILE (mode 0600), which 'countersign device answer' reads: keep it as secret as the phone's keystore.")
	c.examples = "  countersign device activate --code csa_... --state ./phone.json\n"
	addr := c.String("addr", "URL", "http://127.0.0.1:8080", "server base URL (or HOST:PORT)")
	code := c.String("code", "CODE", "", "the activation code (required)")
	state := c.String("state", "FILE", "", "where to keep the device's token and key (required)")
	insecure := c.Bool("insecure", false, "accept any server certificate (https with a dev certificate)")
	if err := e.parse(c, args); err != nil {
		return err
	}
	if *code == "" || *state == "" {
		return usagef("--code and --state are required")
	}
	cl, err := deviceClient(*addr, *insecure)
	if err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	d, err := cl.ActivateDevice(*code, &client.Activation{PublicKey: pub, Platform: devicePlatform, AppVersion: deviceAppVersion, Model: deviceModel})
	if err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	b, err := json.Marshal(phoneState{Addr: *addr, DeviceID: d.DeviceID, UserID: d.UserID, DeviceToken: d.DeviceToken, PrivateKey: priv})
	if err != nil {
		return err
	}
	// WriteFile keeps an existing file's mode (mktemp's 0600, or looser):
	// make it 0600 whatever it was before the key is in it.
	f, err := os.OpenFile(*state, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "activated device %s for user %s (its token and key are in %s)\n", d.DeviceID, d.UserID, *state)
	return nil
}

func cmdDeviceAnswer(args []string, e *env) error {
	c := newCommand("device answer", "countersign device answer --state FILE [--deny] [--n N] [--for DURATION]",
		"Long-polls the user's pending approvals as the authenticator app does and answers the next N of them, "+
			"signed with the device's key, with a passed biometric check: approve, or deny with --deny. It prints each "+
			"approval it was shown (message and values) and what the server decided, and exits 1 if fewer than N came "+
			"within --for. Under number matching, --number gives the two digits the requester shows.")
	c.examples = "  countersign device answer --state ./phone.json             # approve the next approval\n" +
		"  countersign device answer --state ./phone.json --deny --n 2\n"
	addr := c.String("addr", "URL", "", "server base URL (default: the one the device was activated on)")
	state := c.String("state", "FILE", "", "the file 'countersign device activate' wrote (required)")
	deny := c.Bool("deny", false, "deny instead of approving")
	n := c.Int("n", "N", 1, "how many approvals to answer")
	within := c.Duration("for", "DURATION", time.Minute, "how long to wait for them")
	number := c.String("number", "NN", "", "the number to pick under number matching")
	location := c.String("location", "LAT,LON", "", "where the phone says it is (for geo-fences; default: no location)")
	insecure := c.Bool("insecure", false, "accept any server certificate (https with a dev certificate)")
	if err := e.parse(c, args); err != nil {
		return err
	}
	if *state == "" {
		return usagef("--state is required")
	}
	if *n < 1 || *within <= 0 {
		return usagef("--n and --for must be positive")
	}
	var loc *client.Location
	if *location != "" {
		lat, lon, ok := strings.Cut(*location, ",")
		la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(lon), 64)
		if !ok || err1 != nil || err2 != nil || la < -90 || la > 90 || lo < -180 || lo > 180 {
			return usagef("--location %q: want LAT,LON in degrees, such as 52.37,4.89", *location)
		}
		loc = &client.Location{Lat: la, Lon: lo, AccuracyM: 10}
	}
	raw, err := os.ReadFile(*state)
	if err != nil {
		return err
	}
	var ps phoneState
	if err := json.Unmarshal(raw, &ps); err != nil || ps.DeviceToken == "" || len(ps.PrivateKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("%s is not a device's state (write one with 'countersign device activate')", *state)
	}
	if *addr == "" {
		*addr = ps.Addr
	}
	cl, err := deviceClient(*addr, *insecure)
	if err != nil {
		return err
	}
	decision := "approve"
	if *deny {
		decision = "deny"
	}
	key := ed25519.PrivateKey(ps.PrivateKey)
	deadline := time.Now().Add(*within)
	answered := map[string]bool{}
	for len(answered) < *n {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("answered %d of %d approvals: no other came within %v", len(answered), *n, *within)
		}
		pending, err := cl.DeviceApprovals(ps.DeviceToken, max(1, min(25, int(left/time.Second))))
		if err != nil {
			return err
		}
		for i := range pending {
			p := &pending[i]
			if answered[p.ApprovalID] || len(answered) == *n {
				continue
			}
			if p.NumberMatch && *number == "" {
				return fmt.Errorf("approval %s asks for number matching: pass --number with the two digits the requester shows", p.ApprovalID)
			}
			ans := &client.DeviceAnswer{
				Decision: decision, Biometric: "PASS", BiometricMethod: "face", Location: loc,
				Platform: devicePlatform, AppVersion: deviceAppVersion,
				Timestamp: time.Now().UTC().Format(time.RFC3339),
			}
			if p.NumberMatch {
				ans.Number = *number
			}
			ans.Sign(key, p)
			res, err := cl.AnswerApproval(ps.DeviceToken, p.ApprovalID, ans)
			if err != nil {
				return fmt.Errorf("answer %s: %w", p.ApprovalID, err)
			}
			answered[p.ApprovalID] = true
			fmt.Fprintf(e.stdout, "%s %s %q", decision, p.ApprovalID, p.Message)
			for _, v := range p.Values {
				fmt.Fprintf(e.stdout, " %s=%q", v.Key, v.Value)
			}
			fmt.Fprintf(e.stdout, " -> %s\n", res.Status)
		}
	}
	return nil
}

func deviceClient(addr string, insecure bool) (*client.Client, error) {
	cfg := client.Config{Addr: addr, Timeout: 10 * time.Second}
	if insecure {
		cfg.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for explicitly, for dev certificates
	}
	return client.NewClient(cfg)
}
