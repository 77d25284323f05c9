package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. The kernel
// exports them in USER_HZ, which is 100 on every Linux architecture Go
// supports (sysconf(_SC_CLK_TCK) needs cgo to ask).
const userHZ = 100

// ProcSample is one reading of a process's resource use.
type ProcSample struct {
	CPU time.Duration // user + system time of all its threads so far
	RSS int64         // resident set size, bytes
	HWM int64         // peak resident set size, bytes
}

// ErrNoProc is returned by ReadProc where /proc is not available.
var ErrNoProc = errors.New("bench: no /proc for that process")

// ReadProc reads the CPU time and memory of process pid from
// /proc/<pid>/stat and /proc/<pid>/status (Linux).
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: fields are counted after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("%w: unexpected %s/stat", ErrNoProc, dir)
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return s, fmt.Errorf("%w: short %s/stat", ErrNoProc, dir)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64) // field 14
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("%w: bad CPU times in %s/stat", ErrNoProc, dir)
	}
	s.CPU = ticks(utime + stime)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	s.RSS = statusKB(status, "VmRSS:")
	s.HWM = statusKB(status, "VmHWM:")
	return s, nil
}

// MachineSample is a reading of every CPU's time, from /proc/stat, and of
// the kernel threads visible in /proc.
type MachineSample struct {
	// Busy is time spent running processes (user, nice, system), kernel
	// threads included.
	Busy time.Duration
	// IRQ is time spent in interrupts and softirqs: loopback networking and
	// block I/O completions land there, not on any process.
	IRQ time.Duration
	// Steal is time the hypervisor gave to other guests.
	Steal time.Duration
	// KernelThreads is the CPU time of kernel threads (children of
	// kthreadd): journal commits and I/O workers doing a process's fsyncs.
	KernelThreads time.Duration
	// Cores is each CPU's busy time (processes and interrupts), in CPU
	// order: whether the server's CPU was saturated, by whom.
	Cores []time.Duration
}

// ReadMachine reads /proc/stat and the kernel threads' /proc/<pid>/stat.
// The difference between the machine's busy time and that of the watched
// processes and kernel threads is what other processes took: on a shared
// machine, the measure of how much a phase's figures can be trusted.
func ReadMachine() (MachineSample, error) {
	var m MachineSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return m, fmt.Errorf("%w: unexpected /proc/stat", ErrNoProc)
	}
	var v [8]int64 // user nice system idle iowait irq softirq steal
	for i := range v {
		v[i], _ = strconv.ParseInt(string(f[i+1]), 10, 64)
	}
	m.Busy = ticks(v[0] + v[1] + v[2])
	m.IRQ = ticks(v[5] + v[6])
	m.Steal = ticks(v[7])
	for _, line := range bytes.Split(b, []byte("\n"))[1:] {
		f := bytes.Fields(line)
		if len(f) < 8 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			break // the per-CPU lines follow the total, in order
		}
		var busy int64
		for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
			n, _ := strconv.ParseInt(string(f[i]), 10, 64)
			busy += n
		}
		m.Cores = append(m.Cores, ticks(busy))
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(string(f[1])); ppid != 2 && pid != 2 {
			continue
		}
		u, _ := strconv.ParseInt(string(f[11]), 10, 64)
		s, _ := strconv.ParseInt(string(f[12]), 10, 64)
		m.KernelThreads += ticks(u + s)
	}
	return m, nil
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// statusKB returns the value of a "Name:   123 kB" line of /proc/<pid>/status
// in bytes, or 0.
func statusKB(status []byte, name string) int64 {
	i := bytes.Index(status, []byte(name))
	if i < 0 {
		return 0
	}
	line := status[i+len(name):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return v << 10
}

// Usage is a watched process's resource use during a measured window. The
// role "machine" (PID 0) is every process together, from /proc/stat.
type Usage struct {
	Role string `json:"role"`
	PID  int    `json:"pid"`
	// CPU is the process's CPU time divided by the window: 1.0 is one core
	// fully busy.
	CPU float64 `json:"cpuCores"`
	// RSSMax is the largest resident set size sampled during the window.
	RSSMax int64 `json:"rssMaxBytes"`
	// RSSEnd is the resident set size at the end of the window.
	RSSEnd int64 `json:"rssEndBytes"`
	// For the role "machine": CPU is every process's time (user, nice,
	// system) and IRQ, Steal and KernelThreads are as in MachineSample, all
	// in cores.
	IRQ           float64 `json:"irqCores,omitempty"`
	Steal         float64 `json:"stealCores,omitempty"`
	KernelThreads float64 `json:"kernelThreadCores,omitempty"`
	// CoreBusy is, for the role "machine", the busy fraction of each CPU.
	CoreBusy []float64 `json:"coreBusy,omitempty"`
	// Error says why the process could not be read, if it could not.
	Error string `json:"error,omitempty"`
}

// monitor samples watched processes between two instants.
type monitor struct {
	done chan struct{}
	wg   sync.WaitGroup
	out  []Usage
}

// startMonitor samples each watched process at from, every step, and at to
// (or when stop is called, whichever is first).
func startMonitor(watch []Watched, from, to time.Time, step time.Duration) *monitor {
	m := &monitor{done: make(chan struct{})}
	if len(watch) == 0 {
		return m
	}
	m.out = make([]Usage, len(watch))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		first := make([]ProcSample, len(watch))
		var t0 time.Time
		wait := func(d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-m.done:
				return false
			case <-t.C:
				return true
			}
		}
		if !wait(time.Until(from)) {
			return
		}
		t0 = time.Now()
		mach0, merr := ReadMachine()
		for i, w := range watch {
			m.out[i] = Usage{Role: w.Role, PID: w.PID}
			s, err := ReadProc(w.PID)
			if err != nil {
				m.out[i].Error = err.Error()
			}
			first[i] = s
			m.out[i].RSSMax = s.RSS
		}
		last := make([]ProcSample, len(watch))
		copy(last, first)
		for {
			d := min(step, time.Until(to))
			more := d > 0 && wait(d)
			for i, w := range watch {
				if m.out[i].Error != "" {
					continue
				}
				if s, err := ReadProc(w.PID); err == nil {
					last[i] = s
					m.out[i].RSSMax = max(m.out[i].RSSMax, s.RSS)
				}
			}
			if !more || !time.Now().Before(to) {
				break
			}
		}
		wall := time.Since(t0).Seconds()
		if mach1, err := ReadMachine(); merr == nil && err == nil && wall > 0 {
			cores := func(a, b time.Duration) float64 { return (b - a).Seconds() / wall }
			m.out = append(m.out, Usage{Role: "machine",
				CPU:           cores(mach0.Busy, mach1.Busy),
				IRQ:           cores(mach0.IRQ, mach1.IRQ),
				Steal:         cores(mach0.Steal, mach1.Steal),
				KernelThreads: cores(mach0.KernelThreads, mach1.KernelThreads),
			})
			if u := &m.out[len(m.out)-1]; len(mach0.Cores) == len(mach1.Cores) {
				for i := range mach0.Cores {
					u.CoreBusy = append(u.CoreBusy, round(cores(mach0.Cores[i], mach1.Cores[i]), 3))
				}
			}
		}
		for i := range watch {
			if m.out[i].Error != "" || wall <= 0 {
				continue
			}
			m.out[i].CPU = (last[i].CPU - first[i].CPU).Seconds() / wall
			m.out[i].RSSEnd = last[i].RSS
		}
	}()
	return m
}

// stop ends sampling and returns the usage seen.
func (m *monitor) stop() []Usage {
	close(m.done)
	m.wg.Wait()
	return m.out
}
