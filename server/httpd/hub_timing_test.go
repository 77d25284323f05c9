package httpd

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHubWake: with 10,000 requests held, each on a key of its own,
// the time from a publish to its waiter's return, one wake at a time
// (reported as p50 and p99; the goal is a p99 under 5 ms).
func BenchmarkHubWake(b *testing.B) {
	const n = 10000
	h := newHub(0)
	var sent [n]atomic.Int64 // UnixNano of the publish to waiter i
	latency := make(chan time.Duration)
	ready := make(chan struct{}, n)
	for i := range n {
		go func() {
			w, err := h.Subscribe(numberedKey(i))
			if err != nil {
				panic(err)
			}
			defer w.Close()
			ready <- struct{}{}
			for w.Wait(time.Now().Add(time.Hour)) == WakePublished {
				latency <- time.Duration(time.Now().UnixNano() - sent[i].Load())
			}
		}()
	}
	for range n {
		<-ready
	}
	keys := make([]HubKey, n)
	for i := range keys {
		keys[i] = numberedKey(i)
	}
	samples := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := (i * 7919) % n // a prime stride: not the waiter just woken
		sent[k].Store(time.Now().UnixNano())
		h.Publish(keys[k])
		samples = append(samples, <-latency)
	}
	b.StopTimer()
	h.Shutdown()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(samples[len(samples)-1].Nanoseconds()), "max-ns")
}
