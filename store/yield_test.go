package store

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingYielder is a yielder whose pauses are counted, not slept.
func countingYielder() (*yielder, *atomic.Int64) {
	y := newYielder()
	var n atomic.Int64
	y.sleep = func(time.Duration) { n.Add(1) }
	return y, &n
}

func TestYielderPausesOnlyWhileServing(t *testing.T) {
	y, slept := countingYielder()
	step := func() { time.Sleep(2 * yieldEvery) }

	// No foreground call yet: a table writer runs flat out.
	for range 5 {
		y.maybeYield()
		step()
	}
	if n := slept.Load(); n != 0 {
		t.Fatalf("idle store: %d pauses, want 0", n)
	}

	// Requests are reaching the store: each write at least yieldEvery
	// after the last pause pauses, and one right after a pause does not.
	for i := range 5 {
		y.touch()
		y.maybeYield()
		if n := slept.Load(); n != int64(i+1) {
			t.Fatalf("serving, write %d: %d pauses, want %d", i, n, i+1)
		}
		y.maybeYield() // within yieldEvery of the pause
		if n := slept.Load(); n != int64(i+1) {
			t.Fatalf("serving, write %d again at once: %d pauses, want %d", i, n, i+1)
		}
		step()
	}

	// Requests starved by the writer itself make no calls: the writer
	// keeps pausing while the latest call is recent...
	before := slept.Load()
	y.maybeYield()
	if slept.Load() != before+1 {
		t.Fatal("no call since the last check, but one within yieldIdle: want a pause")
	}
	// ...except while Pebble stalls writes: then the requests wait for
	// the writer.
	y.stall.Store(true)
	time.Sleep(2 * yieldEvery)
	before = slept.Load()
	y.maybeYield()
	if slept.Load() != before {
		t.Fatal("paused during a write stall")
	}
	y.stall.Store(false)
	// ...and stops once the store has been idle for yieldIdle.
	time.Sleep(yieldIdle + 10*time.Millisecond)
	before = slept.Load()
	for range 3 {
		y.maybeYield()
		step()
	}
	if n := slept.Load() - before; n != 0 {
		t.Fatalf("idle for longer than yieldIdle: %d pauses, want 0", n)
	}
	if got := y.yields.Load(); got != uint64(slept.Load()) {
		t.Fatalf("yields counter %d, pauses %d", got, slept.Load())
	}
}

func TestYieldFSWrapsOnlyTables(t *testing.T) {
	y, _ := countingYielder()
	fs := storeFS{FS: vfs.NewMem(), y: y}
	for name, want := range map[string]bool{
		"000007.sst": true, "000002.log": false, "MANIFEST-000001": false, "OPTIONS-000003": false,
	} {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := f.(yieldFile); got != want {
			t.Errorf("Create(%q) wrapped = %v, want %v", name, got, want)
		}
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	if fs.Unwrap() == nil {
		t.Fatal("Unwrap lost the inner file system")
	}
}

// TestFlushYieldsWhileServing flushes a memtable of real Pebble data once
// while foreground calls are being made and once on an idle store: the
// first pauses, the second does not, and both leave every key readable.
func TestFlushYieldsWhileServing(t *testing.T) {
	db, _ := openMem(t)
	db.yield.sleep = func(time.Duration) {} // count, do not slow the test
	fill := func(round int) {
		b := db.pdb.NewBatch()
		val := bytes.Repeat([]byte{byte(round)}, 1000)
		for i := range 4000 {
			_ = b.Set(fmt.Appendf(nil, "\xfftest-%d-%06d", round, i), val, nil)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}

	org, _ := newOrg(t, db, "acme")
	fill(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a request stream: calls entering the store
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = db.Template(org.ID, "nobody")
			time.Sleep(10 * time.Microsecond)
		}
	}()
	time.Sleep(2 * time.Millisecond)
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	serving := db.BackgroundYields()
	if serving == 0 {
		t.Fatal("a flush while serving took no pause")
	}

	time.Sleep(yieldIdle + 10*time.Millisecond)
	fill(2)
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := db.BackgroundYields(); got != serving {
		t.Fatalf("a flush on an idle store took %d pauses, want 0", got-serving)
	}
	for round := 1; round <= 2; round++ {
		for _, i := range []int{0, 1999, 3999} {
			v, closer, err := db.pdb.Get(fmt.Appendf(nil, "\xfftest-%d-%06d", round, i))
			if err != nil {
				t.Fatalf("round %d key %d after flush: %v", round, i, err)
			}
			if len(v) != 1000 || v[0] != byte(round) {
				t.Fatalf("round %d key %d: wrong value", round, i)
			}
			_ = closer.Close()
		}
	}
}
