package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// bin is the real countersign binary, built once for the package's tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "countersign-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "countersign")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building countersign:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// countersign runs the binary with args and extra environment variables
// (the test's own COUNTERSIGN_* variables are removed first).
func countersign(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COUNTERSIGN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// credentials is the --json output of init and org create.
type credentials struct {
	Org      string `json:"org"`
	CID      string `json:"cid"`
	APIKey   string `json:"apiKey"`
	AdminKey string `json:"adminKey"`
}

func parseCredentials(t *testing.T, stdout string) credentials {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var c credentials
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if dec.More() {
		t.Fatalf("--json printed more than one object: %q", stdout)
	}
	if !strings.HasPrefix(c.CID, "cid_") || !strings.HasPrefix(c.APIKey, "csk_") || !strings.HasPrefix(c.AdminKey, "csk_") ||
		c.AdminKey == c.APIKey || c.Org == "" {
		t.Fatalf("credentials %+v", c)
	}
	return c
}

func TestInitText(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := countersign(t, nil, "init", "--data", data, "--org", "demo", "--addr", "127.0.0.1:18080")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	cid := field(t, r.stdout, "cid")
	key := field(t, r.stdout, "API key")
	if admin := field(t, r.stdout, "admin key"); !strings.HasPrefix(admin, "csk_") || admin == key {
		t.Errorf("admin key %q beside API key %q", admin, key)
	}
	for _, want := range []string{
		`organization "demo"`,
		"countersign serve --data " + data + " --addr 127.0.0.1:18080",
		"curl -s -X POST http://127.0.0.1:18080/v1/sessions -H 'x-client-id: " + cid + "'",
		`-H "x-collect-token: $TOKEN"`,
		"curl -s --compressed -X POST http://127.0.0.1:18080/v1/validate -H 'apikey: " + key + "' -H 'Content-Type: application/json'",
		`{"cid":"` + cid + `","csid":"'$CSID'","userID":"user-1","action":"transfer","additionalData":{"sessionData":[{"key":"amount","value":35,"synonyms":["total","sum"]},{"key":"payeeID","value":6,"synonyms":["payee"]},{"key":"accountNumber","value":"66666666","synonyms":["account"]},{"key":"notes","value":"Wire transfer","synonyms":["memo"]}]},"isEnrollment":false}`,
		`"ivScore":2000`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("init output lacks %q:\n%s", want, r.stdout)
		}
	}
	if ok, err := hasStore(data); !ok || err != nil {
		t.Fatalf("no store in %s (%v)", data, err)
	}
}

// field reads "  NAME  VALUE" from init's text output.
func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no %q line in:\n%s", name, out)
	return ""
}

func TestInitJSON(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := countersign(t, nil, "init", "--data", data, "--org", "acme", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if c := parseCredentials(t, r.stdout); c.Org != "acme" {
		t.Fatalf("org %q, want acme", c.Org)
	}
}

func TestInitRefuses(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if r := countersign(t, nil, "init", "--data", data, "--json"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	r := countersign(t, nil, "init", "--data", data, "--json")
	if r.code != 1 || !strings.Contains(r.stderr, "already holds a countersign store") || r.stdout != "" {
		t.Fatalf("second init: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	other := filepath.Join(dir, "other")
	os.MkdirAll(other, 0o700)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	r = countersign(t, nil, "init", "--data", other)
	if r.code != 1 || !strings.Contains(r.stderr, "is not empty") {
		t.Fatalf("init into a non-empty dir: exit %d stderr %q", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "notes.txt")); string(b) != "mine" {
		t.Fatal("init touched a non-empty directory")
	}
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o700)
	if r := countersign(t, nil, "init", "--data", empty, "--json"); r.code != 0 {
		t.Fatalf("init into an empty dir: exit %d %s", r.code, r.stderr)
	}
}

func TestOrgCreate(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	first := countersign(t, nil, "init", "--data", data, "--json")
	if first.code != 0 {
		t.Fatalf("init: %s", first.stderr)
	}
	a := parseCredentials(t, first.stdout)
	r := countersign(t, nil, "org", "create", "--data", data, "--name", "second", "--json")
	if r.code != 0 {
		t.Fatalf("org create: exit %d %s", r.code, r.stderr)
	}
	b := parseCredentials(t, r.stdout)
	if b.Org != "second" || b.CID == a.CID || b.APIKey == a.APIKey || b.AdminKey == a.AdminKey {
		t.Fatalf("second org %+v, first %+v", b, a)
	}
	r = countersign(t, nil, "org", "create", "--data", data, "--name", "values", "--policy", "values-only")
	if r.code != 0 || !strings.Contains(r.stdout, "cid_") || !strings.Contains(r.stdout, `organization "values"`) {
		t.Fatalf("org create --policy values-only: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	pol := filepath.Join(dir, "policy.json")
	os.WriteFile(pol, []byte(`{"minScore":7000,"enrollment":"passive"}`), 0o600)
	if r := countersign(t, nil, "org", "create", "--data", data, "--name", "file", "--policy", pol, "--json"); r.code != 0 {
		t.Fatalf("org create --policy FILE: exit %d %s", r.code, r.stderr)
	}
	os.WriteFile(pol, []byte(`not json`), 0o600)
	if r := countersign(t, nil, "org", "create", "--data", data, "--name", "bad", "--policy", pol); r.code != 2 || !strings.Contains(r.stderr, "--policy") {
		t.Fatalf("org create with a bad policy: exit %d %s", r.code, r.stderr)
	}
	r = countersign(t, nil, "org", "create", "--data", filepath.Join(dir, "none"), "--name", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "holds no countersign store") {
		t.Fatalf("org create without a store: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Fatal("org create created a data directory")
	}
}

func TestEnvironmentFlags(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	r := countersign(t, []string{"COUNTERSIGN_DATA=" + data, "COUNTERSIGN_ORG=fromenv", "COUNTERSIGN_JSON=true"}, "init")
	if r.code != 0 {
		t.Fatalf("init from the environment: exit %d %s", r.code, r.stderr)
	}
	if c := parseCredentials(t, r.stdout); c.Org != "fromenv" {
		t.Fatalf("org %q, want fromenv", c.Org)
	}
	// A flag wins over its variable.
	r = countersign(t, []string{"COUNTERSIGN_DATA=" + data, "COUNTERSIGN_NAME=fromenv", "COUNTERSIGN_JSON=true"},
		"org", "create", "--name", "fromflag")
	if c := parseCredentials(t, r.stdout); r.code != 0 || c.Org != "fromflag" {
		t.Fatalf("org create: exit %d org %q, want fromflag", r.code, c.Org)
	}
	// --addr reaches the printed curl commands through COUNTERSIGN_ADDR.
	r = countersign(t, []string{"COUNTERSIGN_ADDR=127.0.0.1:19999"}, "init", "--data", filepath.Join(dir, "d2"))
	if r.code != 0 || !strings.Contains(r.stdout, "http://127.0.0.1:19999/v1/validate") {
		t.Fatalf("COUNTERSIGN_ADDR ignored: exit %d\n%s", r.code, r.stdout)
	}
	// A bad value in a variable is a usage error naming the variable.
	r = countersign(t, []string{"COUNTERSIGN_JSON=maybe"}, "init", "--data", filepath.Join(dir, "d3"))
	if r.code != 2 || !strings.Contains(r.stderr, "COUNTERSIGN_JSON") {
		t.Fatalf("bad COUNTERSIGN_JSON: exit %d %s", r.code, r.stderr)
	}
}

func TestBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if r := countersign(t, nil, "init", "--data", data, "--json"); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"launch"}, `unknown command "launch"`},
		{[]string{"init"}, "--data is required"},
		{[]string{"init", "--bogus"}, "flag provided but not defined"},
		{[]string{"init", "--data", filepath.Join(dir, "x"), "extra"}, `unexpected argument "extra"`},
		{[]string{"init", "--data", filepath.Join(dir, "y"), "--org", ""}, "--org must not be empty"},
		{[]string{"org"}, "missing subcommand"},
		{[]string{"org", "delete"}, `unknown subcommand "delete"`},
		{[]string{"org", "create", "--data", data}, "--name is required"},
		{[]string{"serve"}, "--data is required"},
		{[]string{"serve", "--data", data, "--durability", "maybe"}, "--durability"},
		{[]string{"serve", "--data", data, "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"serve", "--data", data, "--require-client-cert"}, "need --tls-cert"},
		{[]string{"serve", "--data", data, "--embedding-dim", "0"}, "--embedding-dim must be positive"},
		{[]string{"serve", "--data", data, "--wal-sync", "fsync"}, "--wal-sync"},
		{[]string{"serve", "--data", data, "--workers", "many"}, "invalid value"},
		{[]string{"serve", "--data", data, "--session-ttl", "forever"}, "invalid value"},
		{[]string{"serve", "--data", data, "--wal-sync-interval", "-1ms"}, "--wal-sync-interval must not be negative"},
		{[]string{"serve", "--data", data, "--idempotency-ttl", "-1h"}, "--idempotency-ttl must not be negative"},
		{[]string{"serve", "--data", data, "--log-format", "xml"}, "--log-format"},
		{[]string{"serve", "--data", data, "--public-url", "auth.example.com"}, `--public-url "auth.example.com": the scheme must be http or https`},
		{[]string{"serve", "--data", data, "--public-url", "https://auth.example.com/?x=1"}, "only a scheme, a host and a path"},
		{[]string{"bench", "--spawn", "--disk-probe", "0", "--disk-probe-dir", data}, "--disk-probe-dir needs a --disk-probe duration"},
		{[]string{"bench", "--spawn", "--disk-probe", "-1s"}, "--disk-probe not negative"},
		{[]string{"simulate"}, "--cid and --apikey are required"},
		{[]string{"simulate", "--cid", "c", "--apikey", "k", "--scenario", "heist"}, `unknown scenario "heist"`},
		{[]string{"simulate", "--cid", "c", "--apikey", "k", "--n", "0"}, "must be positive"},
	} {
		r := countersign(t, nil, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("countersign %q: exit %d, stderr %q; want exit 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"init", "--help"}, []string{"data", "org", "addr", "master-key-file", "json"}},
		{[]string{"org", "create", "--help"}, []string{"data", "name", "policy", "json"}},
		{[]string{"serve", "-h"}, []string{"data", "addr", "master-key-file", "embedding-dim", "durability", "tls-cert", "tls-key",
			"client-ca", "require-client-cert", "workers", "queue", "session-ttl", "shutdown-timeout"}},
		{[]string{"simulate", "--help"}, []string{"addr", "cid", "apikey", "scenario", "n", "gzip"}},
	} {
		r := countersign(t, nil, c.args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: countersign ") {
			t.Errorf("%q: exit %d stdout %q stderr %q", c.args, r.code, r.stdout, r.stderr)
			continue
		}
		for _, f := range c.flags {
			if !strings.Contains(r.stdout, "  --"+f) || !strings.Contains(r.stdout, "env "+envName(f)) {
				t.Errorf("%q does not document --%s and %s", c.args, f, envName(f))
			}
		}
	}
	if r := countersign(t, nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "countersign simulate") {
		t.Errorf("help: exit %d %q", r.code, r.stdout)
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"addr":                "COUNTERSIGN_ADDR",
		"embedding-dim":       "COUNTERSIGN_EMBEDDING_DIM",
		"require-client-cert": "COUNTERSIGN_REQUIRE_CLIENT_CERT",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// TestReadmeAgrees keeps README.md's walk-through equal to what init prints
// and to the answer the end-to-end tests get.
func TestReadmeAgrees(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, line := range strings.Split(curlExamples("countersign", "127.0.0.1:8080", "CID", "KEY", "ADMINKEY"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(readme, line) {
			t.Errorf("README lacks the command line init prints:\n%s", line)
		}
	}
	start := strings.Index(readme, "```json\n")
	if start < 0 {
		t.Fatal("README has no json block")
	}
	block := readme[start+len("```json\n"):]
	block = block[:strings.Index(block, "```")]
	var got, want map[string]any
	if err := json.Unmarshal([]byte(block), &got); err != nil {
		t.Fatalf("README answer: %v", err)
	}
	json.Unmarshal([]byte(documentedAnswer), &want)
	got["decisionID"] = "ID"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("README's answer differs from the one the server gives:\n%s", block)
	}
	// Every flag serve --help documents is in the README's table.
	help := countersign(t, nil, "serve", "--help")
	flags := regexp.MustCompile(`(?m)^  (--[a-z0-9-]+)`).FindAllStringSubmatch(help.stdout, -1)
	if len(flags) < 15 {
		t.Fatalf("serve --help lists %d flags:\n%s", len(flags), help.stdout)
	}
	for _, m := range flags {
		if !strings.Contains(readme, "`"+m[1]+"`") {
			t.Errorf("README's configuration table lacks %s", m[1])
		}
	}
}

// keyMode is the permission bits of a master key file, failing the test if
// it is not there.
func keyMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("master key file: %v", err)
	}
	return st.Mode().Perm()
}

func TestInitMasterKey(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	r := countersign(t, nil, "init", "--data", data)
	if r.code != 0 {
		t.Fatalf("init: exit %d %s", r.code, r.stderr)
	}
	path := filepath.Join(data, "master.key")
	if m := keyMode(t, path); m != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", path, m)
	}
	if !strings.Contains(r.stdout, "is in "+path+".\nBack it up with the data directory: without it sealed secrets cannot be read.") {
		t.Errorf("init does not say where the master key is and to back it up:\n%s", r.stdout)
	}
	b, _ := os.ReadFile(path)
	if key := strings.TrimPrefix(strings.TrimSpace(string(b)), "countersign-master-key-v1 "); strings.Contains(r.stdout, key) {
		t.Error("init printed the master key")
	}

	// --master-key-file puts the key elsewhere; the printed serve command
	// names it, and the data directory holds no key of its own.
	data2, elsewhere := filepath.Join(dir, "data2"), filepath.Join(dir, "keys", "countersign.key")
	os.MkdirAll(filepath.Dir(elsewhere), 0o700)
	r = countersign(t, nil, "init", "--data", data2, "--master-key-file", elsewhere)
	if r.code != 0 {
		t.Fatalf("init --master-key-file: exit %d %s", r.code, r.stderr)
	}
	if m := keyMode(t, elsewhere); m != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", elsewhere, m)
	}
	if _, err := os.Stat(filepath.Join(data2, "master.key")); !os.IsNotExist(err) {
		t.Errorf("init --master-key-file also made DIR/master.key (%v)", err)
	}
	if !strings.Contains(r.stdout, "serve --data "+data2+" --addr 127.0.0.1:8080 --master-key-file "+elsewhere) {
		t.Errorf("the printed serve command lacks --master-key-file:\n%s", r.stdout)
	}

	// An existing key file is used, never replaced; an exposed one is
	// refused and init leaves nothing behind.
	before, _ := os.ReadFile(elsewhere)
	data3 := filepath.Join(dir, "data3")
	if r := countersign(t, []string{"COUNTERSIGN_MASTER_KEY_FILE=" + elsewhere}, "init", "--data", data3, "--json"); r.code != 0 {
		t.Fatalf("init with an existing key file: exit %d %s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(elsewhere); string(after) != string(before) {
		t.Fatal("init replaced an existing master key file")
	}
	os.Chmod(elsewhere, 0o644)
	data4 := filepath.Join(dir, "data4")
	r = countersign(t, nil, "init", "--data", data4, "--master-key-file", elsewhere)
	if r.code != 1 || !strings.Contains(r.stderr, "accessible to group or others") || !strings.Contains(r.stderr, elsewhere) {
		t.Errorf("init with a 0644 key file: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(data4); !os.IsNotExist(err) {
		t.Errorf("a refused init left %s behind (%v)", data4, err)
	}
}

func TestServeMasterKey(t *testing.T) {
	data, _ := newOrg(t)
	path := filepath.Join(data, "master.key")
	addr := freeAddr(t)

	os.Chmod(path, 0o644)
	r := countersign(t, nil, "serve", "--data", data, "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "store: master key file is accessible to group or others: "+path+" has mode 0644") ||
		!strings.Contains(r.stderr, "chmod 600") || strings.Contains(r.stderr, "opened store") {
		t.Errorf("serve with a 0644 key: exit %d %s", r.code, r.stderr)
	}
	os.Chmod(path, 0o600)

	missing := filepath.Join(t.TempDir(), "absent.key")
	r = countersign(t, []string{"COUNTERSIGN_MASTER_KEY_FILE=" + missing}, "serve", "--data", data, "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "master key file does not exist: "+missing) ||
		!strings.Contains(r.stderr, "COUNTERSIGN_MASTER_KEY_FILE") {
		t.Errorf("serve with a missing --master-key-file: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("serve created the key file --master-key-file names (%v)", err)
	}

	os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	r = countersign(t, nil, "serve", "--data", data, "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "not a countersign master key: "+path+" is 32 bytes") {
		t.Errorf("serve with a raw 32-byte key: exit %d %s", r.code, r.stderr)
	}

	// A store made before master keys existed gets one, logged once
	// without the key.
	os.Remove(path)
	p := serve(t, data, addr)
	if m := keyMode(t, path); m != 0o600 {
		t.Fatalf("serve made %s with mode %04o, want 0600", path, m)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, p.logs.String())
	}
	logs := p.logs.String()
	b, _ := os.ReadFile(path)
	key := strings.TrimPrefix(strings.TrimSpace(string(b)), "countersign-master-key-v1 ")
	if strings.Count(logs, "created a master key file") != 1 || !strings.Contains(logs, "loaded master key") || strings.Contains(logs, key) {
		t.Errorf("serve's log of the new master key:\n%s", logs)
	}
	p = serve(t, data, addr)
	p.stop(syscall.SIGTERM)
	if strings.Contains(p.logs.String(), "created a master key file") {
		t.Errorf("serve made a master key again:\n%s", p.logs.String())
	}
}
