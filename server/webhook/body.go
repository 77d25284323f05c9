// Package webhook delivers an organization's events to its subscriptions
// (DESIGN "Webhooks"): the bodies of the events the store writes into its
// outbox with each approval change (AppendBody), the subscriptions' secrets
// and URL checks, the signatures (Standard Webhooks, and UNLOQ's
// X-Unloq-Signature), and the Sender, a worker that reads the outbox,
// posts each delivery with a bounded timeout, retries with exponential
// backoff and jitter, and logs every attempt.
//
// It sits beside the surfaces, below the server: the admin surface uses
// its checks and secrets, the server starts its Sender; it imports no
// surface.
package webhook

import (
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// AppendBody is the store's EventBodies: the body of ev as a subscription
// of format f receives it.
//
// Standard: {"type","timestamp","data":{...}}, the payload structure the
// Standard Webhooks specification recommends, with times in data as Unix
// milliseconds like the rest of the API. approval.created's data is what
// an organization's push service needs to wake the user's app:
// {"approvalID","userID","message","values":[{"key","value"}],"method",
// "createdAt","expiresAt","numberMatch","devices":[{"deviceID","platform",
// "pushToken"}]}; approval.decided's is {"approvalID","userID","status",
// "decidedAt","deviceID","factors"}; approval.email's, what the
// organization's notifier mails, is {"approvalID","userID","email",
// "message","link","expiresAt"}: opening link approves.
//
// UNLOQ: the same fields form-encoded (x-www-form-urlencoded), snake_case
// as UNLOQ's webhooks name them: type, id, timestamp, approval_id,
// user_id, and so on; values as values[KEY], devices as
// devices[N][device_id|platform|push_token].
func AppendBody(dst []byte, f store.WebhookFormat, ev *store.ApprovalEvent) []byte {
	if f == store.FormatUnloq {
		return appendForm(dst, formFields(ev))
	}
	a := ev.Approval
	dst = append(dst, `{"type":"`...)
	dst = append(dst, ev.Type.String()...)
	dst = append(dst, `","timestamp":"`...)
	dst = ev.At.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","data":{"approvalID":`...)
	dst = jsonwire.AppendString(dst, a.ID)
	dst = append(dst, `,"userID":`...)
	dst = jsonwire.AppendString(dst, a.UserID)
	if ev.Type == store.EventApprovalEmail {
		dst = append(dst, `,"email":`...)
		dst = jsonwire.AppendString(dst, ev.Email.To)
		dst = append(dst, `,"message":`...)
		dst = jsonwire.AppendString(dst, a.Message)
		dst = append(dst, `,"link":`...)
		dst = jsonwire.AppendString(dst, ev.Email.URL)
		dst = append(dst, `,"expiresAt":`...)
		dst = strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
		return append(dst, "}}"...)
	}
	if ev.Type == store.EventApprovalCreated {
		dst = append(dst, `,"message":`...)
		dst = jsonwire.AppendString(dst, a.Message)
		dst = append(dst, `,"values":[`...)
		for i, v := range a.Values {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			dst = jsonwire.AppendString(dst, v.Key)
			dst = append(dst, `,"value":`...)
			dst = jsonwire.AppendString(dst, v.Value)
			dst = append(dst, '}')
		}
		dst = append(dst, `],"method":"`...)
		dst = append(dst, a.Method.String()...)
		dst = append(dst, `","createdAt":`...)
		dst = strconv.AppendInt(dst, a.CreatedAt.UnixMilli(), 10)
		dst = append(dst, `,"expiresAt":`...)
		dst = strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
		dst = append(dst, `,"numberMatch":`...)
		dst = jsonwire.AppendBool(dst, a.NumberMatch)
		dst = append(dst, `,"devices":[`...)
		for i := range ev.Devices {
			d := &ev.Devices[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"deviceID":`...)
			dst = jsonwire.AppendString(dst, d.ID)
			dst = append(dst, `,"platform":`...)
			dst = jsonwire.AppendString(dst, d.Platform)
			dst = append(dst, `,"pushToken":`...)
			dst = jsonwire.AppendString(dst, d.PushToken)
			dst = append(dst, '}')
		}
		return append(dst, "]}}"...)
	}
	dst = append(dst, `,"status":"`...)
	dst = append(dst, a.Status.String()...)
	dst = append(dst, `","decidedAt":`...)
	dst = strconv.AppendInt(dst, decidedAt(a), 10)
	dst = append(dst, `,"deviceID":`...)
	dst = jsonwire.AppendString(dst, a.DeviceID)
	dst = append(dst, `,"factors":`...)
	dst = a.AppendFactorsJSON(dst)
	return append(dst, "}}"...)
}

// decidedAt is when a was decided, in Unix milliseconds; an approval
// marked expired without a time expired at its expiry.
func decidedAt(a *approval.Approval) int64 {
	if a.DecidedAt.IsZero() {
		return a.ExpiresAt.UnixMilli()
	}
	return a.DecidedAt.UnixMilli()
}

// formFields are the UNLOQ format's fields of ev.
func formFields(ev *store.ApprovalEvent) url.Values {
	a := ev.Approval
	v := url.Values{}
	v.Set("type", ev.Type.String())
	v.Set("id", ev.ID)
	v.Set("timestamp", strconv.FormatInt(ev.At.Unix(), 10))
	v.Set("approval_id", a.ID)
	v.Set("user_id", a.UserID)
	if ev.Type == store.EventApprovalEmail {
		v.Set("email", ev.Email.To)
		v.Set("message", a.Message)
		v.Set("link", ev.Email.URL)
		v.Set("expires_at", strconv.FormatInt(a.ExpiresAt.UnixMilli(), 10))
		return v
	}
	if ev.Type == store.EventApprovalCreated {
		v.Set("message", a.Message)
		v.Set("method", a.Method.String())
		v.Set("created_at", strconv.FormatInt(a.CreatedAt.UnixMilli(), 10))
		v.Set("expires_at", strconv.FormatInt(a.ExpiresAt.UnixMilli(), 10))
		v.Set("number_match", strconv.FormatBool(a.NumberMatch))
		for _, kv := range a.Values {
			v.Set("values["+kv.Key+"]", kv.Value)
		}
		for i, d := range ev.Devices {
			n := "devices[" + strconv.Itoa(i) + "]"
			v.Set(n+"[device_id]", d.ID)
			v.Set(n+"[platform]", d.Platform)
			v.Set(n+"[push_token]", d.PushToken)
		}
		return v
	}
	v.Set("status", a.Status.String())
	v.Set("decided_at", strconv.FormatInt(decidedAt(a), 10))
	v.Set("device_id", a.DeviceID)
	for _, f := range a.Factors {
		v.Set("factors["+f.Factor.String()+"]", f.Outcome.String())
	}
	return v
}

// appendForm appends v form-encoded, keys sorted, as url.Values.Encode
// writes it.
func appendForm(dst []byte, v url.Values) []byte {
	return append(dst, v.Encode()...)
}

// sortedKeys are v's keys in the order UNLOQ's signature takes them.
func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
