//go:build linux

package bench

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pacer is a worker's precise clock: a timerfd, which the runtime's network
// poller watches like a socket, so the wait ends when the kernel's
// high-resolution timer fires rather than on epoll_wait's millisecond.
type pacer struct {
	f   *os.File // nil: no timerfd, sleep on the Go timer
	fd  int
	buf [8]byte
}

func newPacer() *pacer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return &pacer{}
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// poller, so Read parks the goroutine instead of blocking its thread.
	return &pacer{f: os.NewFile(uintptr(fd), "bench-pacer"), fd: fd}
}

// precise says whether waits use the kernel's timer.
func (p *pacer) precise() bool { return p.f != nil }

// sleep waits d: a one-shot relative timer, then a read of its expiry count.
func (p *pacer) sleep(d time.Duration) {
	if p.f != nil {
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
		if unix.TimerfdSettime(p.fd, 0, &spec, nil) == nil {
			if _, err := p.f.Read(p.buf[:]); err == nil {
				return
			}
		}
	}
	time.Sleep(d)
}

func (p *pacer) close() {
	if p.f != nil {
		_ = p.f.Close()
	}
}
