package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Pinning places the server and the load generator on distinct CPUs, so
// that they do not steal cycles from each other and figures are comparable
// between runs: the server on ServerCPUs with GOMAXPROCS set to their count,
// the generator (this process) on LoadCPUs.
type Pinning struct {
	ServerCPUs string `json:"serverCPUs,omitempty"` // taskset list, "" = not pinned
	LoadCPUs   string `json:"loadCPUs,omitempty"`
	// ServerGOMAXPROCS is the spawned server's GOMAXPROCS; 0 leaves it to Go.
	ServerGOMAXPROCS int `json:"serverGOMAXPROCS,omitempty"`
	// Note says why pinning is off, when it is.
	Note string `json:"note,omitempty"`
}

// DefaultPinning is the documented method: server on core 0 with
// GOMAXPROCS=1, load on core 1, when taskset exists and this process may
// run on at least two CPUs; otherwise no pinning, with a note saying why.
func DefaultPinning() Pinning {
	if _, err := exec.LookPath("taskset"); err != nil {
		return Pinning{Note: "taskset not found: server and load share every CPU"}
	}
	if runtime.NumCPU() < 2 {
		return Pinning{Note: "fewer than 2 CPUs: server and load share the CPU"}
	}
	return Pinning{ServerCPUs: "0", LoadCPUs: "1", ServerGOMAXPROCS: 1}
}

// cpuCount counts the CPUs of a taskset list ("0", "2-3", "0,2").
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		n += max(b-a+1, 0)
	}
	return n
}

// PinSelf moves every thread of this process to cpus (taskset -a -p) and
// sets GOMAXPROCS to their count. Threads created later inherit the mask.
func PinSelf(cpus string) error {
	if cpus == "" {
		return nil
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bench: taskset -a -p -c %s: %v: %s", cpus, err, bytes.TrimSpace(out))
	}
	if n := cpuCount(cpus); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return nil
}

// Process is a child process the harness started: countersign serve, or a
// ceiling server.
type Process struct {
	Addr string
	PID  int
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *lockedWriter // its stdout and stderr
}

// StartProcess runs binary args pinned to cpus (taskset -c, when cpus is not
// empty) with GOMAXPROCS=gomaxprocs (when positive), and waits until
// http://addr/readyPath answers 200 (any status when readyPath is empty).
func StartProcess(ctx context.Context, binary string, args []string, addr, readyPath string, cpus string, gomaxprocs int) (*Process, error) {
	name, argv := binary, args
	if cpus != "" {
		name, argv = "taskset", append([]string{"-c", cpus, binary}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = os.Environ()
	if gomaxprocs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	p := &Process{Addr: addr, cmd: cmd, done: make(chan struct{}), out: &lockedWriter{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", binary, err)
	}
	p.PID = cmd.Process.Pid // taskset execs the binary: same pid
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(ctx, readyPath, 60*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, p.out.String())
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	uri := "http://" + p.Addr + "/" + strings.TrimPrefix(path, "/")
	for {
		select {
		case <-p.done:
			return fmt.Errorf("bench: %s exited before it was ready: %v", filepath.Base(p.cmd.Path), p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		status, _, err := fasthttp.GetTimeout(nil, uri, time.Second)
		if err == nil && (path == "" || status == fasthttp.StatusOK) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not ready after %v", uri, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM, waits up to 30 s for a clean exit, then kills.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("bench: process did not stop within 30s of SIGTERM; killed")
	}
	return nil
}

// Logs returns what the process printed so far.
func (p *Process) Logs() string { return p.out.String() }

// FreeAddr returns a loopback address nothing listens on right now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Spawned is a countersign server the harness created and started: a
// temporary data directory, an organization, and 'countersign serve'.
type Spawned struct {
	*Process
	Dir, CID, APIKey string
	AdminKey         string
	keepDir          bool
}

// SpawnOptions says how to start a server.
type SpawnOptions struct {
	Binary     string // the countersign binary
	Dir        string // data directory parent; "" makes a temporary one, removed by Stop
	Addr       string // "" picks a free loopback port
	Durability string // "sync" (default) or "relaxed"
	Pin        Pinning
	ServeArgs  []string // extra 'countersign serve' flags
}

// Spawn runs 'countersign init --json' into a new data directory, then
// 'countersign serve' on it (pinned as o.Pin says), and waits until /readyz
// answers 200.
func Spawn(ctx context.Context, o SpawnOptions) (*Spawned, error) {
	s := &Spawned{Dir: o.Dir, keepDir: o.Dir != ""}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "countersign-bench-")
		if err != nil {
			return nil, err
		}
		s.Dir = d
	}
	data := filepath.Join(s.Dir, "data")
	out, err := exec.CommandContext(ctx, o.Binary, "init", "--data", data, "--org", "bench", "--json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		s.cleanup()
		return nil, fmt.Errorf("bench: countersign init: %w", err)
	}
	var cred struct {
		CID      string `json:"cid"`
		APIKey   string `json:"apiKey"`
		AdminKey string `json:"adminKey"`
	}
	if err := json.Unmarshal(out, &cred); err != nil || cred.CID == "" || cred.APIKey == "" {
		s.cleanup()
		return nil, fmt.Errorf("bench: countersign init --json printed %q", out)
	}
	s.CID, s.APIKey, s.AdminKey = cred.CID, cred.APIKey, cred.AdminKey
	addr := o.Addr
	if addr == "" {
		if addr, err = FreeAddr(); err != nil {
			s.cleanup()
			return nil, err
		}
	}
	dur := o.Durability
	if dur == "" {
		dur = "sync"
	}
	args := append([]string{"serve", "--data", data, "--addr", addr, "--durability", dur, "--log-level", "warn"}, o.ServeArgs...)
	p, err := StartProcess(ctx, o.Binary, args, addr, "/readyz", o.Pin.ServerCPUs, o.Pin.ServerGOMAXPROCS)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.Process = p
	return s, nil
}

// Stop stops the server and removes the temporary data directory.
func (s *Spawned) Stop() error {
	var err error
	if s.Process != nil {
		err = s.Process.Stop()
	}
	s.cleanup()
	return err
}

func (s *Spawned) cleanup() {
	if !s.keepDir && s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// lockedWriter is an io.Writer a child process writes while the harness may
// read it; it keeps about the last 64 KiB.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len()+len(p) > 64<<10 {
		keep := append([]byte(nil), l.b.Bytes()[min(l.b.Len(), len(p)):]...)
		l.b.Reset()
		l.b.Write(keep)
	}
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
