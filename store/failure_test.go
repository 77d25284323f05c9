package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/store/fullfs"
)

// lineLog counts what a store logs.
type lineLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lineLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// recovered runs fn, turning the panic of a commit that met a failed log
// write (deadOnFatal) into its error.
func recovered(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			perr, ok := p.(error)
			if !ok {
				panic(p)
			}
			err = perr
		}
	}()
	return fn()
}

// TestFullDiskFailsTheStore fills the store's disk from four writers at
// once: the first write the disk refuses fails the store, so every call
// after it answers ErrFull (and ErrFatal) at once instead of stalling
// behind a flush Pebble retries for ever; Close is bounded; the failure
// is logged once; and every write that was acknowledged is there after a
// crash and a reopen with space again. The disk fills under the log, or
// (the log writing on, in space it holds) under a flush's table.
func TestFullDiskFailsTheStore(t *testing.T) {
	t.Run("log", func(t *testing.T) { testFullDisk(t, fullfs.New(vfs.NewCrashableMem(), 6<<20)) })
	t.Run("tables", func(t *testing.T) {
		disk := fullfs.New(vfs.NewCrashableMem(), 1<<20)
		disk.Exempt(".log")
		testFullDisk(t, disk)
	})
}

func testFullDisk(t *testing.T, disk *fullfs.FS) {
	mem := disk.Unwrap().(*vfs.MemFS)
	logs := &lineLog{}
	db, err := Open(Options{Dir: "db", FS: disk, Now: newClock().Now, CacheBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	check(t, err)
	o, _ := newOrg(t, db, "acme")

	const writers = 4
	var (
		mu    sync.Mutex
		acked = map[string]uint32{} // csid -> frames acknowledged
		wg    sync.WaitGroup
		slow  time.Duration
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			frame := make([]byte, 32<<10)
			for i := 0; ; i++ {
				csid := fmt.Sprintf("csid-%d-%05d", w, i)
				for j := range frame {
					frame[j] = byte(r.Uint32()) // incompressible, so the disk fills
				}
				start := time.Now()
				err := recovered(func() error {
					if _, _, err := db.CreateSession(o.ID, csid, "u", "a"); err != nil {
						return err
					}
					_, err := db.AppendEvents(o.ID, csid, nil, [][]byte{frame, frame[:16<<10]}, false)
					if err == nil {
						mu.Lock()
						acked[csid] = 2
						mu.Unlock()
					}
					return err
				})
				mu.Lock()
				slow = max(slow, time.Since(start))
				mu.Unlock()
				if err != nil {
					if !errors.Is(err, ErrFatal) {
						t.Errorf("writer %d: a write to a full disk: %v", w, err)
					}
					return
				}
				if i > 100000 {
					t.Errorf("writer %d: the disk never filled", w)
					return
				}
			}
		}()
	}
	wg.Wait()
	if slow > 2*time.Second {
		t.Errorf("the slowest write took %v; a full disk must be answered at once", slow)
	}
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged before the disk filled")
	}
	select {
	case <-db.Failed():
	default:
		t.Fatal("Failed() is not closed after the disk filled")
	}
	if !db.Full() {
		t.Error("Full() is false after ENOSPC")
	}
	// Every later call, read or write, answers ErrFull at once.
	start := time.Now()
	_, err = db.OrgByID(o.ID)
	wantErr(t, err, ErrFull)
	wantErr(t, db.PutTemplate(o.ID, "u1", []byte("tmpl")), ErrFull)
	wantErr(t, db.PutTemplate(o.ID, "u1", []byte("tmpl")), ErrFatal)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("calls to a failed store took %v", d)
	}

	start = time.Now()
	err = db.Close()
	if d := time.Since(start); d > failedCloseWait+time.Second {
		t.Errorf("Close of a store with a full disk took %v (err %v)", d, err)
	}
	t.Logf("acknowledged %d sessions, %d writes refused ENOSPC, close: %v", len(acked), disk.Refused(), err)
	var disk2 []string
	for _, l := range logs.lines() {
		if strings.Contains(l, "level=ERROR") {
			disk2 = append(disk2, l)
		}
	}
	if len(disk2) == 0 || len(disk2) > 3 {
		t.Errorf("%d error lines for one full disk, want 1 to 3:\n%s", len(disk2), strings.Join(disk2, "\n"))
	} else if !strings.Contains(disk2[0], "the disk is full") {
		t.Errorf("the first line does not name the cause: %s", disk2[0])
	}

	// A crash now keeps what was synced; reopened with space, the store
	// holds every acknowledged write.
	db2, err := Open(Options{Dir: "db", FS: mem.CrashClone(vfs.CrashCloneCfg{}), Now: newClock().Now})
	check(t, err)
	defer db2.Close()
	for csid, n := range acked {
		s, err := db2.Session(o.ID, csid)
		if err != nil {
			t.Fatalf("acknowledged session %s after reopening: %v", csid, err)
		}
		if s.FramesReceived != n {
			t.Fatalf("session %s: %d frames after reopening, %d acknowledged", csid, s.FramesReceived, n)
		}
		got := 0
		check(t, db2.Frames(o.ID, csid, 0, func(uint32, []byte) error { got++; return nil }))
		if got != int(n) {
			t.Fatalf("session %s: %d frames readable, %d acknowledged", csid, got, n)
		}
	}
}
