package jsonwire

import (
	"strconv"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// The parts of an approval every surface that shows one renders alike.

// AppendApprovalValues appends an approval's values in their order, the
// order the device signs them in: [{"key","value"},...].
func AppendApprovalValues(dst []byte, values []approval.Value) []byte {
	dst = append(dst, '[')
	for i := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = AppendString(dst, values[i].Key)
		dst = append(dst, `,"value":`...)
		dst = AppendString(dst, values[i].Value)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// AppendDecidedAt appends when a was decided as read at now, in Unix
// milliseconds: null while pending, the expiry for one read as expired but
// not yet marked so.
func AppendDecidedAt(dst []byte, a *approval.Approval, now time.Time) []byte {
	switch {
	case a.StatusAt(now) == approval.StatusPending:
		return append(dst, "null"...)
	case a.DecidedAt.IsZero():
		return strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
	}
	return strconv.AppendInt(dst, a.DecidedAt.UnixMilli(), 10)
}
