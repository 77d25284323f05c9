package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/countersign/countersign/store"
)

// cmdInit creates the data directory, the store in it, and a first
// organization, and prints the organization's credentials once.
func cmdInit(args []string, e *env) error {
	c := newCommand("init", "countersign init --data DIR [--org NAME] [--addr HOST:PORT] [--master-key-file FILE] [--json]",
		"Creates the store in DIR, its master key file, and a first organization, and prints the organization's client id (cid, "+
			"publishable), its API key (secret, for the backend's calls) and its admin key (secret, for /admin/v1 only), "+
			"each shown only this once: the store keeps their SHA-256. "+
			"Refuses a DIR that already holds a store. Without --json it also prints curl commands "+
			"that try the API against a server started with 'countersign serve --data DIR --addr HOST:PORT'.")
	data := c.String("data", "DIR", "", "data directory to create (required; must not hold a store)")
	keyFile := c.String("master-key-file", "FILE", "", masterKeyUsage+"; init creates it (mode 0600), or uses it if it is already a valid key file")
	org := c.String("org", "NAME", "default", "name of the first organization")
	addr := c.String("addr", "HOST:PORT", "127.0.0.1:8080", "address the server will listen on, used in the printed curl commands")
	asJSON := c.Bool("json", false, `print one JSON object {"org","cid","apiKey","adminKey"} instead of text`)
	if err := e.parse(c, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("--data is required")
	}
	if strings.TrimSpace(*org) == "" {
		return usagef("--org must not be empty")
	}
	created, err := prepareNewDir(*data)
	if err != nil {
		return err
	}
	var cr orgCredentials
	// A failed init leaves nothing it made: a second try starts afresh.
	keyPath := masterKeyPath(*data, *keyFile)
	_, keyCreated, err := masterKey(keyPath, true)
	if err == nil {
		cr, err = createOrg(*data, *org, nil)
	}
	if err != nil {
		if keyCreated {
			_ = os.Remove(keyPath)
		}
		if created {
			_ = os.RemoveAll(*data)
		}
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, cr)
	}
	fmt.Fprintf(e.stdout, "countersign: created the store in %s and the organization %q.\n\n", *data, cr.org.Name)
	printCredentials(e.stdout, cr)
	fmt.Fprintf(e.stdout, "\nThe master key that seals stored secrets is in %s.\n"+
		"Back it up with the data directory: without it sealed secrets cannot be read.\n", keyPath)
	serveKey := ""
	if *keyFile != "" {
		// Without the flag serve would use (and create) DIR's own key file.
		serveKey = " --master-key-file " + shellQuote(*keyFile)
	}
	fmt.Fprintf(e.stdout, "\nStart the server (make run does this):\n\n  %s serve --data %s --addr %s%s\n\n", shellQuote(e.prog), shellQuote(*data), *addr, serveKey)
	fmt.Fprintf(e.stdout, "then try it from another shell:\n\n%s", curlExamples(e.prog, *addr, cr.org.CID, cr.apiKey, cr.adminKey))
	return nil
}

// cmdOrg dispatches 'countersign org SUBCOMMAND'.
func cmdOrg(args []string, e *env) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(e.stdout, "Usage: countersign org create --data DIR --name NAME [--policy values-only|FILE.json] [--json]\n")
			return nil
		}
		return usagef("missing subcommand: countersign org create --data DIR --name NAME")
	}
	switch args[0] {
	case "create":
		return cmdOrgCreate(args[1:], e)
	}
	return usagef("unknown subcommand %q (known: create)", args[0])
}

// cmdOrgCreate adds an organization to an existing store that no server has
// open (Pebble's lock refuses a second opener).
func cmdOrgCreate(args []string, e *env) error {
	c := newCommand("org create", "countersign org create --data DIR --name NAME [--policy values-only|FILE.json] [--json]",
		"Adds an organization to the store in DIR and prints its client id, API key and admin key (the keys shown only this once). "+
			"The store must not be in use: stop the server first. --policy sets the organization's policy: "+
			"'values-only' decides on the values (no biometrics required; any violation still refuses), or a JSON file with the keys "+
			"thresholds, weights, enrollment, verdict and minScore (missing keys keep the defaults).")
	data := c.String("data", "DIR", "", "data directory holding the store (required)")
	name := c.String("name", "NAME", "", "name of the organization (required)")
	pol := c.String("policy", "values-only|FILE.json", "", "the organization's policy (default: DESIGN's default policy)")
	asJSON := c.Bool("json", false, `print one JSON object {"org","cid","apiKey","adminKey"} instead of text`)
	if err := e.parse(c, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("--data is required")
	}
	if strings.TrimSpace(*name) == "" {
		return usagef("--name is required")
	}
	policyJSON, err := readPolicy(*pol)
	if err != nil {
		return err
	}
	if ok, err := hasStore(*data); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%s holds no countersign store; create one with 'countersign init --data %s'", *data, shellQuote(*data))
	}
	cr, err := createOrg(*data, *name, policyJSON)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, cr)
	}
	fmt.Fprintf(e.stdout, "countersign: created the organization %q in %s.\n\n", cr.org.Name, *data)
	printCredentials(e.stdout, cr)
	return nil
}

// orgCredentials is what creating an organization prints once: the
// organization, its backend API key and its admin key.
type orgCredentials struct {
	org              store.Org
	apiKey, adminKey string
}

// createOrg opens the store, creates one organization with a backend key
// and an admin key, and closes the store. The operator who creates an
// organization is the one who manages its users, so both keys are made
// together; an organization left without its admin key by a failed second
// write is reported, and has no users yet to lose.
func createOrg(dir, name string, policyJSON []byte) (orgCredentials, error) {
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		return orgCredentials{}, openError(dir, err)
	}
	var cr orgCredentials
	cr.org, cr.apiKey, err = db.CreateOrg(name, policyJSON)
	if err == nil {
		cr.adminKey, err = db.AddAPIKey(cr.org.ID, store.ScopeAdmin)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return orgCredentials{}, fmt.Errorf("create organization %q: %w", name, err)
	}
	return cr, nil
}

// masterKeyUsage describes --master-key-file for init and serve alike.
const masterKeyUsage = "file holding the master key that seals stored secrets (default DIR/" + store.MasterKeyFile + ")"

// masterKeyPath is --master-key-file, or the data directory's key file.
func masterKeyPath(dir, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return store.MasterKeyPath(dir)
}

// masterKey loads the master key file at path, first creating it when it is
// missing and create is set, and reports whether it did.
func masterKey(path string, create bool) (s *store.Sealer, created bool, err error) {
	s, err = store.LoadMasterKey(path)
	if create && errors.Is(err, store.ErrMasterKeyMissing) {
		if err := store.CreateMasterKey(path, nil); err != nil {
			return nil, false, err
		}
		s, err = store.LoadMasterKey(path)
		return s, true, err
	}
	return s, false, err
}

// openError explains the usual reason a store does not open.
func openError(dir string, err error) error {
	// Pebble holds an exclusive flock on DIR/LOCK while a server runs.
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock") {
		return fmt.Errorf("open store %s: %w (is a server using it? stop it first)", dir, err)
	}
	return fmt.Errorf("open store %s: %w", dir, err)
}

// hasStore says whether dir holds a Pebble database.
func hasStore(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, en := range entries {
		n := en.Name()
		if n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "marker.manifest.") {
			return true, nil
		}
	}
	return false, nil
}

// prepareNewDir refuses a directory that holds a store or anything else, and
// creates it when missing (reporting whether it did, to undo on failure).
func prepareNewDir(dir string) (created bool, err error) {
	if ok, err := hasStore(dir); err != nil {
		return false, err
	} else if ok {
		return false, fmt.Errorf("%s already holds a countersign store; init only creates new ones "+
			"(add an organization with 'countersign org create --data %s --name NAME', or choose another --data)", dir, shellQuote(dir))
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, err
	case len(entries) > 0:
		return false, fmt.Errorf("%s is not empty; init wants a new or empty directory", dir)
	}
	return false, nil
}

func printJSON(w io.Writer, cr orgCredentials) error {
	return json.NewEncoder(w).Encode(struct {
		Org      string `json:"org"`
		CID      string `json:"cid"`
		APIKey   string `json:"apiKey"`
		AdminKey string `json:"adminKey"`
	}{cr.org.Name, cr.org.CID, cr.apiKey, cr.adminKey})
}

func printCredentials(w io.Writer, cr orgCredentials) {
	fmt.Fprintf(w, "  organization  %s (id %s)\n", cr.org.Name, cr.org.ID)
	fmt.Fprintf(w, "  cid           %s\n", cr.org.CID)
	fmt.Fprintf(w, "  API key       %s   (backend: validate, approvals)\n", cr.apiKey)
	fmt.Fprintf(w, "  admin key     %s   (operators: /admin/v1 only)\n", cr.adminKey)
	fmt.Fprintf(w, "\nThe keys are shown only now: countersign keeps only their SHA-256.\n")
}

// curlExamples are the ready-to-paste commands init prints: start a session
// as the client SDK would, send the form values the user saw (other names,
// other JSON types), then validate as the backend would, with the
// documented body.
func curlExamples(prog, addr, cid, key, adminKey string) string {
	base := "http://" + addr
	var b strings.Builder
	fmt.Fprintf(&b, "# 1. The client SDK starts a session (x-client-id is the publishable cid).\n")
	fmt.Fprintf(&b, "CSID=demo-$(date +%%s)\n")
	fmt.Fprintf(&b, "TOKEN=$(curl -s -X POST %s/v1/sessions -H 'x-client-id: %s' -H 'Content-Type: application/json' \\\n", base, cid)
	fmt.Fprintf(&b, "  -d '{\"csid\":\"'$CSID'\",\"userID\":\"user-1\",\"action\":\"transfer\"}' | sed -E 's/.*\"collectToken\":\"([^\"]*)\".*/\\1/')\n\n")
	fmt.Fprintf(&b, "# 2. It sends the values the user saw, under its own names and types.\n")
	fmt.Fprintf(&b, "curl -s -X POST %s/v1/sessions/$CSID/events -H 'x-client-id: %s' -H \"x-collect-token: $TOKEN\" \\\n", base, cid)
	fmt.Fprintf(&b, "  -H 'Content-Type: application/json' \\\n")
	fmt.Fprintf(&b, "  -w '\\n' -d '{\"fields\":[{\"key\":\"total\",\"value\":\"35.00\"},{\"key\":\"payee\",\"value\":\"6\"},{\"key\":\"account\",\"value\":66666666},{\"key\":\"memo\",\"value\":\"Wire transfer\"}],\"final\":true}'\n\n")
	fmt.Fprintf(&b, "# 3. Your backend asks before it moves the money (apikey is secret).\n")
	fmt.Fprintf(&b, "curl -s --compressed -X POST %s/v1/validate -H 'apikey: %s' -H 'Content-Type: application/json' \\\n", base, key)
	fmt.Fprintf(&b, "  -d '{\"cid\":\"%s\",\"csid\":\"'$CSID'\",\"userID\":\"user-1\",\"action\":\"transfer\",\"additionalData\":{\"sessionData\":[{\"key\":\"amount\",\"value\":35,\"synonyms\":[\"total\",\"sum\"]},{\"key\":\"payeeID\",\"value\":6,\"synonyms\":[\"payee\"]},{\"key\":\"accountNumber\",\"value\":\"66666666\",\"synonyms\":[\"account\"]},{\"key\":\"notes\",\"value\":\"Wire transfer\",\"synonyms\":[\"memo\"]}]},\"isEnrollment\":false}'\n", cid)
	fmt.Fprintf(&b, "\n# -> every value matched, no face frames: \"ivScore\":2000, \"verifiedAction\":false.\n")
	fmt.Fprintf(&b, "# Face frames too: %s simulate --addr %s --cid %s --apikey %s\n\n", shellQuote(prog), addr, cid, key)
	fmt.Fprintf(&b, "# 4. An operator registers the user for push approvals and makes the code that\n")
	fmt.Fprintf(&b, "#    activates the user's authenticator app (the admin key is for /admin/v1 only).\n")
	fmt.Fprintf(&b, "curl -s -X POST %s/admin/v1/users -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \\\n", base, adminKey)
	fmt.Fprintf(&b, "  -w '\\n' -d '{\"userID\":\"user-1\",\"mobile\":\"+31612345678\",\"email\":\"user-1@example.com\",\"name\":\"Demo User\"}'\n")
	fmt.Fprintf(&b, "CODE=$(curl -s -X POST %s/admin/v1/users/user-1/activation-codes -H 'Authorization: Bearer %s' | sed -E 's/.*\"activationCode\":\"([^\"]*)\".*/\\1/'); echo \"activation code $CODE\"\n", base, adminKey)
	fmt.Fprintf(&b, "\n# 5. The user's phone: countersign plays the authenticator app, activated with\n")
	fmt.Fprintf(&b, "#    that code (it keeps its device token and Ed25519 key in $PHONE).\n")
	fmt.Fprintf(&b, "PHONE=$(mktemp)\n")
	fmt.Fprintf(&b, "%s device activate --addr %s --code \"$CODE\" --state \"$PHONE\"\n", shellQuote(prog), addr)
	fmt.Fprintf(&b, "\n# 6. Native approvals: the backend asks the user to approve exactly these values,\n")
	fmt.Fprintf(&b, "#    the phone approves (signed), the backend's long poll answers \"approved\".\n")
	fmt.Fprintf(&b, "APPROVAL=$(curl -s -X POST %s/v1/approvals -H 'apikey: %s' -H 'Content-Type: application/json' \\\n", base, key)
	fmt.Fprintf(&b, "  -d '{\"userID\":\"user-1\",\"message\":\"Pay 35.00 EUR to NL91ABNA0417164300?\",\"values\":[{\"key\":\"amount\",\"value\":\"35.00\"},{\"key\":\"payee\",\"value\":\"NL91ABNA0417164300\"}],\"method\":\"push\"}' \\\n")
	fmt.Fprintf(&b, "  | sed -E 's/.*\"approvalID\":\"([^\"]*)\".*/\\1/')\n")
	fmt.Fprintf(&b, "%s device answer --state \"$PHONE\"\n", shellQuote(prog))
	fmt.Fprintf(&b, "curl -s \"%s/v1/approvals/$APPROVAL?wait=25\" -H 'apikey: %s' -w '\\n'\n", base, key)
	fmt.Fprintf(&b, "\n# 7. iVALT's clients, only the base URL changed: a push to the user's mobile, the\n")
	fmt.Fprintf(&b, "#    phone approves, the result call answers 200 \"success\" with every factor.\n")
	fmt.Fprintf(&b, "curl -s -X POST %s/ivalt/biometric-auth-request -H 'x-api-key: %s' -H 'Content-Type: application/json' \\\n", base, key)
	fmt.Fprintf(&b, "  -w '\\n' -d '{\"mobile\":\"+31612345678\"}'\n")
	fmt.Fprintf(&b, "%s device answer --state \"$PHONE\"\n", shellQuote(prog))
	fmt.Fprintf(&b, "curl -s -X POST %s/ivalt/biometric-auth-result -H 'x-api-key: %s' -H 'Content-Type: application/json' \\\n", base, key)
	fmt.Fprintf(&b, "  -w '\\n' -d '{\"mobile\":\"+31612345678\"}'\n")
	fmt.Fprintf(&b, "\n# 8. UNLOQ's clients, only the gateway changed: authenticate is held until the\n")
	fmt.Fprintf(&b, "#    phone answers (here, in the background), then names the user and a token.\n")
	fmt.Fprintf(&b, "%s device answer --state \"$PHONE\" &\n", shellQuote(prog))
	fmt.Fprintf(&b, "curl -s -X POST %s/unloq/v1/authenticate -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \\\n", base, key)
	fmt.Fprintf(&b, "  -w '\\n' -d '{\"email\":\"user-1@example.com\",\"ip\":\"203.0.113.7\"}'\n")
	fmt.Fprintf(&b, "wait\n")
	fmt.Fprintf(&b, "\n# 9. The authenticator app end to end: users of its own activate devices with an\n")
	fmt.Fprintf(&b, "#    Ed25519 key, approve, deny, fail, answer late or forged; each outcome checked.\n")
	fmt.Fprintf(&b, "%s simulate --authenticator --addr %s --admin-key %s --api-key %s\n", shellQuote(prog), addr, adminKey, key)
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
