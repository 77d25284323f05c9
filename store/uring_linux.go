package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An fsync that does not hold the P.
//
// A goroutine in a system call keeps its P until sysmon takes it back, and
// sysmon does so only after seeing the same call across one of its ticks,
// which back off from 20 us to 10 ms while it has had nothing to take. With
// GOMAXPROCS=1 the WAL's fdatasync (about 230 us on the measured disk)
// therefore usually held the only P from start to end: an execution trace
// under an open loop at 8 000 validates/s showed the P inside fdatasync
// for 60-80% of some stretches while connections with requests waited.
//
// uringSyncer issues the fdatasync through io_uring instead and waits for
// its completion on an eventfd the Go netpoller watches: the waiting
// goroutine parks like one waiting for a socket, the P runs requests, and
// a kernel worker thread does the sync. Durability is unchanged: the call
// returns only when the kernel reports the fdatasync done, with its error.
// Where io_uring is unavailable (old kernels, seccomp profiles that refuse
// it) newUringSyncer fails and the store syncs the ordinary way.
type uringSyncer struct {
	mu      sync.Mutex    // one operation in flight
	broken  bool          // the ring misbehaved once: fdatasync from then on
	onBreak func(error)   // told once, when the ring breaks (the store logs it)
	synced  atomic.Uint64 // syncs carried out through the ring
	ringFd  int
	efd     *os.File // eventfd, non-blocking, in the netpoller
	sqRing  []byte
	cqRing  []byte
	sqes    []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqArray unsafe.Pointer
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	closed  bool
}

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	uringOffSQRing     = 0
	uringOffCQRing     = 0x8000000
	uringOffSQEs       = 0x10000000
	uringFeatSingleMap = 1 << 0
	uringOpFsync       = 3
	uringFsyncDatasync = 1 << 0
	uringSQEAsync      = 1 << 4 // IOSQE_ASYNC: straight to a worker thread
	uringRegEventfd    = 4
	uringSQESize       = 64
	uringCQESize       = 16
)

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// newUringSyncer sets up a small ring (fsyncs are issued one at a time).
func newUringSyncer() (*uringSyncer, error) {
	var p uringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	u := &uringSyncer{ringFd: int(fd)}
	fail := func(err error) (*uringSyncer, error) {
		u.unmap()
		_ = unix.Close(u.ringFd)
		return nil, err
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uringCQESize)
	if p.features&uringFeatSingleMap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if u.sqRing, err = unix.Mmap(u.ringFd, uringOffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(fmt.Errorf("mmap sq ring: %w", err))
	}
	if p.features&uringFeatSingleMap != 0 {
		u.cqRing = u.sqRing
	} else if u.cqRing, err = unix.Mmap(u.ringFd, uringOffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(fmt.Errorf("mmap cq ring: %w", err))
	}
	if u.sqes, err = unix.Mmap(u.ringFd, uringOffSQEs, int(p.sqEntries)*uringSQESize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(fmt.Errorf("mmap sqes: %w", err))
	}
	at := func(b []byte, off uint32) unsafe.Pointer { return unsafe.Pointer(&b[off]) }
	u.sqHead = (*uint32)(at(u.sqRing, p.sqOff.head))
	u.sqTail = (*uint32)(at(u.sqRing, p.sqOff.tail))
	u.sqMask = *(*uint32)(at(u.sqRing, p.sqOff.ringMask))
	u.sqArray = at(u.sqRing, p.sqOff.array)
	u.cqHead = (*uint32)(at(u.cqRing, p.cqOff.head))
	u.cqTail = (*uint32)(at(u.cqRing, p.cqOff.tail))
	u.cqMask = *(*uint32)(at(u.cqRing, p.cqOff.ringMask))
	u.cqes = at(u.cqRing, p.cqOff.cqes)

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	efd32 := int32(efd)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.ringFd), uringRegEventfd,
		uintptr(unsafe.Pointer(&efd32)), 1, 0, 0); errno != 0 {
		_ = unix.Close(efd)
		return fail(fmt.Errorf("io_uring_register eventfd: %w", errno))
	}
	// A non-blocking descriptor handed to os.NewFile joins the netpoller,
	// so a Read parks the goroutine instead of blocking its thread.
	u.efd = os.NewFile(uintptr(efd), "io_uring-eventfd")
	// Kernels that set up a ring may still refuse what sync sends (Linux
	// 5.2-5.5 answer IOSQE_ASYNC with EINVAL): sync a scratch file once
	// through the ring and use it only if that works.
	if err := u.probe(); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

func (u *uringSyncer) probe() error {
	fd, err := unix.MemfdCreate("countersign-io_uring-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("io_uring probe: memfd: %w", err)
	}
	defer unix.Close(fd)
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := u.ring(uintptr(fd), true); err != nil {
		return fmt.Errorf("io_uring probe: %w", err)
	}
	return nil
}

func (u *uringSyncer) unmap() {
	if u.sqes != nil {
		_ = unix.Munmap(u.sqes)
	}
	if u.cqRing != nil && &u.cqRing[0] != &u.sqRing[0] {
		_ = unix.Munmap(u.cqRing)
	}
	if u.sqRing != nil {
		_ = unix.Munmap(u.sqRing)
	}
}

// errUringClosed: a sync after Close.
var errUringClosed = errors.New("store: io_uring syncer closed")

// sync fdatasyncs (datasync) or fsyncs fd and returns its result. If the
// ring itself fails (the submission or the wait fails, or the kernel refuses
// the operation, so the sync never ran), the syncer is marked broken and this
// and every later sync call fdatasync or fsync directly: slower, never less
// durable. Errors of the sync itself (EIO, ENOSPC) are returned as they are.
func (u *uringSyncer) sync(fd uintptr, datasync bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return errUringClosed
	}
	if !u.broken {
		res, err := u.ring(fd, datasync)
		if err == nil {
			u.synced.Add(1)
			if res < 0 {
				return &os.PathError{Op: "fsync (io_uring)", Path: "wal", Err: unix.Errno(-res)}
			}
			return nil
		}
		u.broken = true
		if u.onBreak != nil {
			u.onBreak(err)
		}
	}
	if datasync {
		return unix.Fdatasync(int(fd))
	}
	return unix.Fsync(int(fd))
}

// ring submits one fsync and waits for its completion; it returns the
// completion's result (0 or -errno of the sync), or an error when the ring
// could not carry it out. The caller holds u.mu.
func (u *uringSyncer) ring(fd uintptr, datasync bool) (int32, error) {
	tail := atomic.LoadUint32(u.sqTail)
	idx := tail & u.sqMask
	sqe := u.sqes[idx*uringSQESize : (idx+1)*uringSQESize]
	clear(sqe)
	sqe[0] = uringOpFsync
	sqe[1] = uringSQEAsync
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	if datasync {
		*(*uint32)(unsafe.Pointer(&sqe[28])) = uringFsyncDatasync
	}
	want := uint64(tail) + 1
	*(*uint64)(unsafe.Pointer(&sqe[32])) = want // user_data
	*(*uint32)(unsafe.Add(u.sqArray, 4*idx)) = idx
	atomic.StoreUint32(u.sqTail, tail+1)
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(u.ringFd), 1, 0, 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
		if n != 1 {
			return 0, fmt.Errorf("io_uring_enter submitted %d of 1", n)
		}
		break
	}
	var buf [8]byte
	for {
		head := atomic.LoadUint32(u.cqHead)
		if head != atomic.LoadUint32(u.cqTail) {
			cqe := unsafe.Add(u.cqes, uringCQESize*(head&u.cqMask))
			userData := *(*uint64)(cqe)
			res := *(*int32)(unsafe.Add(cqe, 8))
			atomic.StoreUint32(u.cqHead, head+1)
			if userData != want {
				continue // an older operation's, whose caller gave up on it
			}
			switch -res {
			case int32(unix.EINVAL), int32(unix.EOPNOTSUPP), int32(unix.ECANCELED), int32(unix.EAGAIN), int32(unix.EINTR):
				// The kernel did not carry the operation out.
				return 0, fmt.Errorf("io_uring fsync: %w", unix.Errno(-res))
			}
			return res, nil
		}
		// Wait in the netpoller for the kernel to post the completion.
		if _, err := u.efd.Read(buf[:]); err != nil {
			return 0, fmt.Errorf("io_uring eventfd: %w", err)
		}
	}
}

// close releases the ring; later syncs fail.
func (u *uringSyncer) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	u.closed = true
	_ = u.efd.Close()
	u.unmap()
	_ = unix.Close(u.ringFd)
}
