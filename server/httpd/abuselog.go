package httpd

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// abuseKind is one kind of log line that clients, not the server, decide
// the number of: without a bound, an attacker chooses the log volume (and
// its disk, and the cost of every line) by opening connections.
type abuseKind int

const (
	abuseTransport abuseKind = iota // fasthttp could not serve a connection (malformed request, ...)
	abuseTLS                        // a TLS handshake failed
	abuseRefused                    // a connection over the per-address cap was refused
	abuseEvicted                    // a waiting connection was closed to make room for a newer one
	numAbuseKinds
)

var abuseKindNames = [numAbuseKinds]string{"transport", "tls_handshake", "per_ip_limit", "waiting_evicted"}

var abuseKindMessages = [numAbuseKinds]string{
	"a connection could not be served",
	"a TLS handshake failed",
	"refused a connection over the per-address cap",
	"closed the oldest waiting connection of an address to make room",
}

// Abuse logging bounds: at most abuseBurst lines of each kind per
// abuseInterval, then one line saying how many were suppressed, when the
// interval ends. 1000 abusive connections in a second cost 6 lines of a
// kind, not 1000; the metrics count every one.
const (
	abuseBurst    = 5
	abuseInterval = 10 * time.Second
)

// abuseLog is the rate-limited logger of abusive traffic.
type abuseLog struct {
	log      *slog.Logger
	interval time.Duration
	kinds    [numAbuseKinds]abuseWindow
}

// abuseWindow counts one kind's lines in the current interval.
type abuseWindow struct {
	mu         sync.Mutex
	start      time.Time
	logged     int
	suppressed int
	summary    bool // a summary line is scheduled for the end of the interval
}

func newAbuseLog(l *slog.Logger) *abuseLog {
	return &abuseLog{log: l, interval: abuseInterval}
}

// note logs one event of kind from ip (invalid when unknown), or counts it
// as suppressed.
func (a *abuseLog) note(kind abuseKind, ip netip.Addr) {
	if a.admit(kind) {
		if ip.IsValid() {
			a.log.Warn(abuseKindMessages[kind], "kind", abuseKindNames[kind], "remote", ip.String())
		} else {
			a.log.Warn(abuseKindMessages[kind], "kind", abuseKindNames[kind])
		}
	}
}

// notef logs one event of kind with a detail made from format and args,
// formatted only when the line is written.
func (a *abuseLog) notef(kind abuseKind, format string, args ...any) {
	if a.admit(kind) {
		a.log.Warn(abuseKindMessages[kind], "kind", abuseKindNames[kind], "detail", fmt.Sprintf(format, args...))
	}
}

// admit reports whether an event of kind may be logged now; when it may
// not, it is counted, and the count logged once the interval ends.
func (a *abuseLog) admit(kind abuseKind) bool {
	w := &a.kinds[kind]
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= a.interval {
		w.start, w.logged = now, 0
	}
	if w.logged < abuseBurst {
		w.logged++
		return true
	}
	w.suppressed++
	if !w.summary {
		w.summary = true
		time.AfterFunc(a.interval-now.Sub(w.start), func() { a.summarize(kind) })
	}
	return false
}

// summarize logs how many lines of kind were suppressed.
func (a *abuseLog) summarize(kind abuseKind) {
	w := &a.kinds[kind]
	w.mu.Lock()
	n := w.suppressed
	w.suppressed, w.summary = 0, false
	w.mu.Unlock()
	if n > 0 {
		a.log.Warn("suppressed log lines of abusive traffic", "kind", abuseKindNames[kind], "suppressed", n,
			"interval", a.interval.String())
	}
}
