package approval

import (
	"strings"
	"testing"
)

// TestSettingsDocument: every field of the document is checked, each error
// names its path, and a valid document renders canonically and reads back.
func TestSettingsDocument(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{"approvals":{"expirySeconds":120,"unloqWaitSeconds":30,"lockoutFailures":5,"lockoutMinutes":15,"maxPending":3,"numberMatch":false,"otpAfterDenial":false},"messages":{},"variables":{}}`},
		{`{"variables":{"b":"2","app":"Demo Bank"},"messages":{"default":"Approve?","UNLOQ":"Log in to $app from $ip?"},"approvals":{"maxPending":1,"otpAfterDenial":true}}`,
			`{"approvals":{"expirySeconds":120,"unloqWaitSeconds":30,"lockoutFailures":5,"lockoutMinutes":15,"maxPending":1,"numberMatch":false,"otpAfterDenial":true},"messages":{"UNLOQ":"Log in to $app from $ip?","default":"Approve?"},"variables":{"app":"Demo Bank","b":"2"}}`},
		{`{"approvals":{"unloqWaitSeconds":9}}`, `error: approvals.unloqWaitSeconds must be between 10 and 40, got 9`},
		{`{"approvals":{"unloqWaitSeconds":41}}`, `error: approvals.unloqWaitSeconds must be between 10 and 40, got 41`},
		{`{"approvals":{"expirySeconds":9}}`, `approvals.expirySeconds must be between 10 and 3600`},
		{`{"approvals":{"lockoutFailures":0}}`, `approvals.lockoutFailures must be between 1 and 100`},
		{`{"approvals":{"lockoutMinutes":1441}}`, `approvals.lockoutMinutes must be between 1 and 1440`},
		{`{"approvals":{"maxPending":11}}`, `approvals.maxPending must be between 1 and 10`},
		{`{"approvals":{"numberMatch":"yes"}}`, `approvals.numberMatch must be true or false`},
		{`{"approvals":{"maxPending":2.5}}`, `approvals.maxPending must be an integer`},
		{`{"approvals":{"colour":1}}`, `unknown setting: "approvals.colour"`},
		{`{"approvals":null}`, `approvals must be an object, got null`},
		{`{"messages":{"SMS":"x"}}`, `"messages.SMS"`},
		{`{"messages":{"UNLOQ":""}}`, `messages.UNLOQ must be 1 to 1024 bytes`},
		{`{"messages":{"UNLOQ":"` + strings.Repeat("x", 1025) + `"}}`, `messages.UNLOQ must be 1 to 1024 bytes`},
		{`{"messages":{"UNLOQ":1}}`, `messages.UNLOQ must be a string, got 1`},
		{`{"messages":[]}`, `messages must be an object of strings`},
		{`{"variables":{"9a":"x"}}`, `variables."9a": a variable name is`},
		{`{"variables":{"app":"a\nb"}}`, `variables.app must be at most 256 bytes without control characters`},
		{`{"variables":{"app":"x","app":"y"}}`, `setting given twice: variables.app`},
		{`{"approvals":{},"approvals":{}}`, `setting given twice: approvals`},
		{`{"extra":1}`, `unknown setting: "extra"`},
		{`{} {}`, `data after the settings document`},
		{`[]`, `the settings document must be a JSON object`},
	} {
		doc, err := ParseSettingsDocument([]byte(tc.in))
		if err != nil {
			if !strings.HasPrefix(tc.want, "error: ") && !strings.Contains(err.Error(), tc.want) || strings.HasPrefix(tc.want, "error: ") && !strings.HasSuffix(err.Error(), tc.want[len("error: "):]) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
			}
			continue
		}
		got := string(doc.AppendJSON(nil))
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
			continue
		}
		again, err := ParseSettingsDocument([]byte(got))
		if err != nil || string(again.AppendJSON(nil)) != got {
			t.Errorf("%s: does not read back: %v", tc.in, err)
		}
	}
}
