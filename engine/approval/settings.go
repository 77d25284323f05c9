package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Settings are an organization's approval settings: the "approvals" object
// of the admin settings document, plus the push-bombing window, which DESIGN
// fixes at 10 approvals per user per 10 minutes and the document does not
// carry. The zero value is not valid; start from DefaultSettings. The
// transitions take settings that do not Validate as DefaultSettings, so
// that a zero or broken value fails closed.
type Settings struct {
	ExpirySeconds    int  // expirySeconds: how long an approval stays pending, 10..3600
	UnloqWaitSeconds int  // unloqWaitSeconds: how long UNLOQ's authenticate holds, 10..40
	LockoutFailures  int  // lockoutFailures: consecutive failures that lock the user, 1..100
	LockoutMinutes   int  // lockoutMinutes: how long the lock lasts, 1..1440
	MaxPending       int  // maxPending: pending approvals per user, 1..10
	NumberMatch      bool // numberMatch: every approval under number matching
	OTPAfterDenial   bool // otpAfterDenial: a native approval after a denial needs the OTP

	RateLimit         int // approvals per user per window (push-bombing), 1..1000
	RateWindowMinutes int // the window, 1..1440
}

// DefaultSettings are DESIGN's defaults: the document
// {"expirySeconds":120,"unloqWaitSeconds":30,"lockoutFailures":5,
// "lockoutMinutes":15,"maxPending":3,"numberMatch":false,"otpAfterDenial":false}
// and 10 approvals per 10 minutes.
func DefaultSettings() Settings {
	return Settings{
		ExpirySeconds: 120, UnloqWaitSeconds: 30, LockoutFailures: 5, LockoutMinutes: 15,
		MaxPending: 3, RateLimit: 10, RateWindowMinutes: 10,
	}
}

// Errors of ParseSettings and Validate, wrapped with the field named as in
// the admin settings document ("approvals.expirySeconds").
var (
	ErrSettingsJSON     = errors.New("approval: invalid settings JSON")
	ErrUnknownSetting   = errors.New("approval: unknown setting")
	ErrDuplicateSetting = errors.New("approval: setting given twice")
	ErrSettingRange     = errors.New("approval: setting out of range")
)

// settingField is one integer key of the document with its bounds.
type settingField struct {
	name     string
	min, max int
	get      func(*Settings) *int
}

var intSettings = [...]settingField{
	{"expirySeconds", MinExpirySeconds, MaxExpirySeconds, func(s *Settings) *int { return &s.ExpirySeconds }},
	{"unloqWaitSeconds", 10, 40, func(s *Settings) *int { return &s.UnloqWaitSeconds }},
	{"lockoutFailures", 1, 100, func(s *Settings) *int { return &s.LockoutFailures }},
	{"lockoutMinutes", 1, 1440, func(s *Settings) *int { return &s.LockoutMinutes }},
	{"maxPending", 1, 10, func(s *Settings) *int { return &s.MaxPending }},
}

// The fields outside the document are checked as the others are.
var windowSettings = [...]settingField{
	{"rateLimit", 1, 1000, func(s *Settings) *int { return &s.RateLimit }},
	{"rateWindowMinutes", 1, 1440, func(s *Settings) *int { return &s.RateWindowMinutes }},
}

var boolSettings = [...]struct {
	name string
	get  func(*Settings) *bool
}{
	{"numberMatch", func(s *Settings) *bool { return &s.NumberMatch }},
	{"otpAfterDenial", func(s *Settings) *bool { return &s.OTPAfterDenial }},
}

const settingsPath = "approvals."

// Validate reports the first field out of its bounds, naming it.
func (s *Settings) Validate() error {
	if f, v, bad := s.firstInvalid(); bad {
		return fmt.Errorf("%w: %s%s must be between %d and %d, got %d",
			ErrSettingRange, settingsPath, f.name, f.min, f.max, v)
	}
	return nil
}

// firstInvalid is Validate without the message, so that the request path
// can check settings without allocating.
func (s *Settings) firstInvalid() (settingField, int, bool) {
	for _, f := range intSettings {
		if v := *f.get(s); v < f.min || v > f.max {
			return f, v, true
		}
	}
	for _, f := range windowSettings {
		if v := *f.get(s); v < f.min || v > f.max {
			return f, v, true
		}
	}
	return settingField{}, 0, false
}

// orDefaults is s, or DefaultSettings when s is nil or does not Validate:
// zero or broken settings fail closed, with the lockout and the limits on.
func (s *Settings) orDefaults() Settings {
	if s == nil {
		return DefaultSettings()
	}
	if _, _, bad := s.firstInvalid(); bad {
		return DefaultSettings()
	}
	return *s
}

// ParseSettings reads the value of the settings document's "approvals" key.
// It is strict as an operator's document should be: one JSON object, keys
// spelled exactly and each at most once, integers for the counts (no 120.5,
// no "120", no null), booleans for the flags, and every count within its
// bounds. Missing keys keep DefaultSettings' values; empty input is the
// default settings.
func ParseSettings(js []byte) (Settings, error) {
	s := DefaultSettings()
	if len(bytes.TrimSpace(js)) == 0 {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Settings{}, fmt.Errorf("%w: the approvals settings are a JSON object", ErrSettingsJSON)
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Settings{}, syntaxError(err)
		}
		key, _ := tok.(string) // an object's tokens here are keys
		for _, k := range seen {
			if k == key {
				return Settings{}, fmt.Errorf("%w: %s%s", ErrDuplicateSetting, settingsPath, key)
			}
		}
		seen = append(seen, key)
		val, err := dec.Token()
		if err != nil {
			return Settings{}, fmt.Errorf("%w (at %s%s)", syntaxError(err), settingsPath, key)
		}
		if err := setSetting(&s, key, val); err != nil {
			return Settings{}, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Settings{}, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Settings{}, fmt.Errorf("%w: data after the approvals object", ErrSettingsJSON)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// syntaxError wraps a tokenizer error, naming the end of input plainly.
func syntaxError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: unexpected end of input", ErrSettingsJSON)
	}
	return fmt.Errorf("%w: %v", ErrSettingsJSON, err)
}

// setSetting stores one key's value, refusing a value of the wrong type.
func setSetting(s *Settings, key string, val json.Token) error {
	for _, f := range intSettings {
		if f.name != key {
			continue
		}
		num, ok := val.(json.Number)
		if !ok {
			return fmt.Errorf("%w: %s%s must be an integer, got %s", ErrSettingsJSON, settingsPath, key, describeToken(val))
		}
		n, err := strconv.Atoi(string(num))
		if err != nil {
			return fmt.Errorf("%w: %s%s must be an integer, got %s", ErrSettingsJSON, settingsPath, key, num)
		}
		*f.get(s) = n
		return nil
	}
	for _, f := range boolSettings {
		if f.name != key {
			continue
		}
		b, ok := val.(bool)
		if !ok {
			return fmt.Errorf("%w: %s%s must be true or false, got %s", ErrSettingsJSON, settingsPath, key, describeToken(val))
		}
		*f.get(s) = b
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownSetting, settingsPath+key)
}

// describeToken names a JSON value for an error message.
func describeToken(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprint(t)
}

// AppendJSON appends s as ParseSettings reads it, every key of the document
// present, in DESIGN's order; the push-bombing window is not part of it.
func (s *Settings) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, f := range intSettings {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendQuote(dst, f.name)
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, int64(*f.get(s)), 10)
	}
	for _, f := range boolSettings {
		dst = append(dst, ',')
		dst = strconv.AppendQuote(dst, f.name)
		dst = append(dst, ':')
		dst = strconv.AppendBool(dst, *f.get(s))
	}
	return append(dst, '}')
}
