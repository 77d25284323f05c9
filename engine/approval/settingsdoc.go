package approval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// SettingsDocument is an organization's whole settings document, as an
// operator writes it to PUT /admin/v1/settings: the approval settings, the
// message templates shown on the device per method (with $variables), and
// the organization's own variables for them.
type SettingsDocument struct {
	Approvals Settings
	// Messages maps a method ("UNLOQ", "EMAIL", "OTP") or "default" to its
	// template.
	Messages map[string]string
	// Variables maps a variable name to its value ($app in a template).
	Variables map[string]string
}

// Limits of the settings document.
const (
	MaxMessageBytes   = 1024
	MaxVariables      = 64
	MaxVariableName   = 64
	MaxVariableValue  = 256
	settingsMsgPath   = "messages."
	settingsVarPath   = "variables."
	settingsDocPrefix = "the settings document"
)

// messageKeys are the templates a document may set, in the order rendered.
var messageKeys = [...]string{"UNLOQ", "EMAIL", "OTP", "default"}

// DefaultSettingsDocument is the document of an organization that never
// wrote one: DefaultSettings, no templates, no variables.
func DefaultSettingsDocument() SettingsDocument {
	return SettingsDocument{Approvals: DefaultSettings(), Messages: map[string]string{}, Variables: map[string]string{}}
}

// ParseSettingsDocument reads and validates a whole settings document,
// strictly (ParseSettings' rules for "approvals"; keys exactly as
// documented, each once). A key left out keeps its default. Every error
// names the field's path ("approvals.maxPending", "messages.UNLOQ",
// "variables.app").
func ParseSettingsDocument(js []byte) (SettingsDocument, error) {
	doc := DefaultSettingsDocument()
	dec := json.NewDecoder(bytes.NewReader(js))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return SettingsDocument{}, fmt.Errorf("%w: %s must be a JSON object", ErrSettingsJSON, settingsDocPrefix)
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return SettingsDocument{}, syntaxError(err)
		}
		key, _ := tok.(string)
		if slices.Contains(seen, key) {
			return SettingsDocument{}, fmt.Errorf("%w: %s", ErrDuplicateSetting, key)
		}
		seen = append(seen, key)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return SettingsDocument{}, fmt.Errorf("%w (at %s)", syntaxError(err), key)
		}
		switch key {
		case "approvals":
			if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				return SettingsDocument{}, fmt.Errorf("%w: approvals must be an object, got null", ErrSettingsJSON)
			}
			if doc.Approvals, err = ParseSettings(raw); err != nil {
				return SettingsDocument{}, err
			}
		case "messages":
			if doc.Messages, err = parseStrings(raw, settingsMsgPath, checkMessage); err != nil {
				return SettingsDocument{}, err
			}
		case "variables":
			if doc.Variables, err = parseStrings(raw, settingsVarPath, checkVariable); err != nil {
				return SettingsDocument{}, err
			}
			if len(doc.Variables) > MaxVariables {
				return SettingsDocument{}, fmt.Errorf("%w: variables has more than %d entries", ErrSettingRange, MaxVariables)
			}
		default:
			return SettingsDocument{}, fmt.Errorf("%w: %q", ErrUnknownSetting, key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return SettingsDocument{}, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SettingsDocument{}, fmt.Errorf("%w: data after %s", ErrSettingsJSON, settingsDocPrefix)
	}
	return doc, nil
}

// parseStrings reads an object of strings, checking each key and value.
func parseStrings(raw []byte, path string, check func(path, key, value string) error) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	name := path[:len(path)-1]
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: %s must be an object of strings", ErrSettingsJSON, name)
	}
	out := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, _ := tok.(string)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: %s%s", ErrDuplicateSetting, path, key)
		}
		val, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w (at %s%s)", syntaxError(err), path, key)
		}
		s, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s%s must be a string, got %s", ErrSettingsJSON, path, key, describeToken(val))
		}
		if err := check(path, key, s); err != nil {
			return nil, err
		}
		out[key] = s
	}
	return out, nil
}

func checkMessage(path, key, value string) error {
	if !slices.Contains(messageKeys[:], key) {
		return fmt.Errorf("%w: %q (a template is for UNLOQ, EMAIL, OTP or default)", ErrUnknownSetting, path+key)
	}
	if len(value) == 0 || len(value) > MaxMessageBytes || hasControlByte(value) {
		return fmt.Errorf("%w: %s%s must be 1 to %d bytes without control characters", ErrSettingRange, path, key, MaxMessageBytes)
	}
	return nil
}

func checkVariable(path, key, value string) error {
	if !validVariableName(key) {
		return fmt.Errorf("%w: %s: a variable name is 1 to %d letters, digits or '_', starting with a letter",
			ErrSettingRange, path+strconv.Quote(key), MaxVariableName)
	}
	if len(value) > MaxVariableValue || hasControlByte(value) {
		return fmt.Errorf("%w: %s%s must be at most %d bytes without control characters", ErrSettingRange, path, key, MaxVariableValue)
	}
	return nil
}

func validVariableName(s string) bool {
	if len(s) == 0 || len(s) > MaxVariableName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '_')) {
			return false
		}
	}
	return true
}

func hasControlByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// AppendJSON appends the document canonically, as GET /admin/v1/settings
// answers it: every key, templates in the order UNLOQ, EMAIL, OTP, default,
// variables sorted by name. ParseSettingsDocument reads it back to d.
func (d *SettingsDocument) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"approvals":`...)
	dst = d.Approvals.AppendJSON(dst)
	dst = append(dst, `,"messages":{`...)
	n := 0
	for _, k := range messageKeys {
		if v, ok := d.Messages[k]; ok {
			dst = appendPair(dst, n, k, v)
			n++
		}
	}
	dst = append(dst, `},"variables":{`...)
	names := make([]string, 0, len(d.Variables))
	for k := range d.Variables {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		dst = appendPair(dst, i, k, d.Variables[k])
	}
	return append(dst, "}}"...)
}

func appendPair(dst []byte, i int, k, v string) []byte {
	if i > 0 {
		dst = append(dst, ',')
	}
	kb, _ := json.Marshal(k) // strings always marshal
	vb, _ := json.Marshal(v)
	dst = append(dst, kb...)
	dst = append(dst, ':')
	return append(dst, vb...)
}
