package store

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTransactionWrites is the store's share of the transaction
// scenario (PERF.md, "Whole transactions"): per op, a session created and
// four posts of three 2 KiB frames each, every post's aggregate (4.2 KiB)
// saved the way the server saves it. Besides the time it reports what
// Pebble wrote per transaction: to the WAL, by flushes and by compactions
// (tables and blob files), which the session record's size and the number
// of its writes decide. Relaxed durability, so that the figures are CPU
// and bytes rather than fsync waits; 64 sessions are open at once, as the
// scenario's 64 connections keep them.
func BenchmarkTransactionWrites(b *testing.B) {
	b.Run("AppendEventsOnce+SaveAggregate", func(b *testing.B) { benchTransactionWrites(b, false) })
	b.Run("AppendEventsScored", func(b *testing.B) { benchTransactionWrites(b, true) })
}

func benchTransactionWrites(b *testing.B, scored bool) {
	c := newClock()
	db, err := Open(Options{Dir: b.TempDir(), Now: c.Now, Durability: Relaxed})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	o, _ := newOrg(b, db, "bench")
	rng := rand.New(rand.NewPCG(1, 2))
	frames := make([]FrameIn, 12)
	for i := range frames {
		raw := make([]byte, 40+512*4)
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		frames[i] = FrameIn{Seq: uint64(i + 1), Raw: raw}
	}
	agg := make([]byte, 4200)
	fields := []FieldValue{{Key: []byte("amount"), Value: []byte(`"35.00"`), TS: 1}}
	const open = 64
	csids := make([]string, open)
	n := 0
	post := func(k, p int) {
		in := frames[3*p : 3*p+3]
		var f []FieldValue
		if p == 0 {
			f = fields
		}
		if scored {
			if _, _, ok, err := db.AppendEventsScored(o.ID, csids[k], f, in, p == 3, 0, 0, &Fold{Aggregate: agg, From: uint32(3 * p)}); err != nil || !ok {
				b.Fatal(err, ok)
			}
			return
		}
		if _, _, err := db.AppendEventsOnce(o.ID, csids[k], f, in, p == 3, 0, 0); err != nil {
			b.Fatal(err)
		}
		if err := db.SaveAggregate(o.ID, csids[k], agg, uint32(3*p+3)); err != nil {
			b.Fatal(err)
		}
	}
	before := db.pdb.Metrics()
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// 64 transactions in flight, each a post further than the next.
		k := i % open
		p := (i / open) % 4
		if p == 0 {
			csids[k] = fmt.Sprintf("csid-%08d", n)
			n++
			if _, _, err := db.CreateSession(o.ID, csids[k], "user-1", "pay"); err != nil {
				b.Fatal(err)
			}
		}
		post(k, p)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	after := db.pdb.Metrics()
	t0, t1 := before.Total(), after.Total()
	tx := float64(b.N) / 4
	b.ReportMetric(float64(after.WAL.BytesWritten-before.WAL.BytesWritten)/tx, "WAL-B/tx")
	b.ReportMetric(float64(t1.TableBytesFlushed-t0.TableBytesFlushed)/tx, "flushed-tables-B/tx")
	b.ReportMetric(float64(t1.BlobBytesFlushed-t0.BlobBytesFlushed)/tx, "flushed-blobs-B/tx")
	b.ReportMetric(float64(t1.TableBytesCompacted-t0.TableBytesCompacted)/tx, "compacted-tables-B/tx")
	// Pebble counts a flush's blob files in BlobBytesCompacted too.
	b.ReportMetric(float64(t1.BlobBytesCompacted-t0.BlobBytesCompacted-(t1.BlobBytesFlushed-t0.BlobBytesFlushed))/tx, "compacted-blobs-B/tx")
	b.ReportMetric(float64(cpu.Nanoseconds())/tx, "cpu-ns/tx")
}

// processCPU is the CPU time (user and system) the process has used, so
// that a benchmark counts Pebble's flushes and compactions too.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
