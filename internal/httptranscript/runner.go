package httptranscript

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// DefaultHost is the Host header a request case gets when it writes none.
const DefaultHost = "countersign.test"

// Runner runs the cases of transcript files against one server: the
// request, raw and let commands of this package, and whatever commands the
// test adds in Commands (moving a fake clock, holding workers). One Runner
// serves one file, since captured variables and mask numbers carry from one
// case to the next.
type Runner struct {
	Addr    string        // host:port of the server, on a real socket
	Host    string        // Host header added to request cases; DefaultHost when empty
	Timeout time.Duration // per exchange; 10 s when zero
	// Show lists the answer headers shown besides DefaultHeaders.
	Show []string
	// Mask lists the JSON fields masked in every answer (see Masks).
	Mask []string
	// Commands are the test's own commands, by name.
	Commands map[string]func(t testing.TB, d *datadriven.TestData) string

	vars  Vars
	echo  []string // variables whose values are shown as $name in answers
	masks Masks
	held  map[string]*heldExchange // requests sent with async=, by name
}

// heldExchange is a request sent with async=NAME whose answer a later
// await NAME shows.
type heldExchange struct {
	args answerArgs
	done chan exchanged
}

// answerArgs are the arguments of a request case that shape its answer,
// copied when it is sent: datadriven reuses a case's TestData.
type answerArgs struct {
	capture, mask, headers []string
}

func argsOf(d *datadriven.TestData) answerArgs {
	return answerArgs{
		capture: slices.Clone(argVals(d, "capture")),
		mask:    slices.Clone(argVals(d, "mask")),
		headers: slices.Clone(argVals(d, "headers")),
	}
}

type exchanged struct {
	a   *Answer
	err error
}

// Set gives the variable name a value. Unless literal, an answer that
// contains the value shows $name instead (values of 8 bytes or more).
func (r *Runner) Set(name, value string, literal bool) {
	if r.vars == nil {
		r.vars = Vars{}
	}
	r.vars[name] = value
	if !literal && !slices.Contains(r.echo, name) {
		r.echo = append(r.echo, name)
	}
}

// Var returns a variable's value.
func (r *Runner) Var(name string) (string, bool) {
	v, ok := r.vars[name]
	return v, ok
}

// Run runs one case and returns its output; pass it to datadriven.RunTest.
func (r *Runner) Run(t testing.TB, d *datadriven.TestData) string {
	t.Helper()
	switch d.Cmd {
	case "request", "http":
		return r.request(t, d, false)
	case "raw":
		return r.request(t, d, true)
	case "let":
		return r.let(t, d)
	case "await":
		return r.await(t, d)
	}
	if f := r.Commands[d.Cmd]; f != nil {
		return f(t, d)
	}
	names := []string{"request", "raw", "let", "await"}
	for n := range r.Commands {
		names = append(names, n)
	}
	slices.Sort(names)
	d.Fatalf(t, "unknown command %q (known: %s)", d.Cmd, strings.Join(names, ", "))
	return ""
}

func (r *Runner) request(t testing.TB, d *datadriven.TestData, raw bool) string {
	t.Helper()
	text, err := r.vars.Expand(d.Input)
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	var msg []byte
	var method string
	if raw {
		// The file's line breaks are for reading only: datadriven trims the
		// input, so a final one could not be told from none.
		if msg, err = Unescape(strings.ReplaceAll(text, "\n", "")); err != nil {
			d.Fatalf(t, "%v", err)
		}
		method, _, _ = strings.Cut(string(msg), " ")
	} else {
		o := RequestOptions{Host: r.Host, Chunked: d.HasArg("chunked"), Bytes: d.HasArg("bytes")}
		if o.Host == "" {
			o.Host = DefaultHost
		}
		for _, enc := range []string{"gzip", "zstd"} {
			if d.HasArg(enc) {
				o.Encoding = enc
			}
		}
		if msg, method, err = BuildRequest(text, o); err != nil {
			d.Fatalf(t, "%v", err)
		}
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	chunks := d.HasArg("chunks") // read now: an async exchange runs after d is reused
	exchange := func() (*Answer, error) {
		if chunks {
			return ExchangeChunks(r.Addr, msg, timeout)
		}
		return Exchange(r.Addr, msg, method, timeout)
	}
	if a, ok := d.Arg("async"); ok {
		name := a.SingleVal(t)
		if r.held[name] != nil {
			d.Fatalf(t, "async=%s: a request of that name is not awaited yet", name)
		}
		h := &heldExchange{args: argsOf(d), done: make(chan exchanged, 1)}
		go func() {
			a, err := exchange()
			h.done <- exchanged{a, err}
		}()
		if r.held == nil {
			r.held = map[string]*heldExchange{}
		}
		r.held[name] = h
		return "(sent; await " + name + " shows its answer)\n"
	}
	a, err := exchange()
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	return r.answer(t, d, argsOf(d), a)
}

// await shows the answer of the request sent with async=NAME, waiting for
// it as long as the exchange's timeout.
func (r *Runner) await(t testing.TB, d *datadriven.TestData) string {
	t.Helper()
	if len(d.CmdArgs) != 1 || len(d.CmdArgs[0].Vals) != 0 {
		d.Fatalf(t, "await needs the name of an async request: await NAME")
	}
	name := d.CmdArgs[0].Key
	h := r.held[name]
	if h == nil {
		d.Fatalf(t, "await %s: no request was sent with async=%s", name, name)
	}
	delete(r.held, name)
	x := <-h.done
	if x.err != nil {
		d.Fatalf(t, "%v", x.err)
	}
	return r.answer(t, d, h.args, x.a)
}

// answer captures, masks and renders the answer a of a request case sent
// with args; d is the case being run.
func (r *Runner) answer(t testing.TB, d *datadriven.TestData, args answerArgs, a *Answer) string {
	t.Helper()
	for _, c := range args.capture {
		name, field, ok := strings.Cut(c, "=")
		if !ok {
			field = name
		}
		v, err := jsonField(a.Body, field)
		if err != nil {
			d.Fatalf(t, "capture %s: %v in %s", c, err, a.Body)
		}
		r.Set(name, v, false)
	}
	mask := append(slices.Clip(r.Mask), args.mask...)
	a.Body = r.masks.Apply(a.Body, mask)
	a.Body = substituteBack(a.Body, r.vars, r.echo)
	for i, c := range a.Chunks {
		a.Chunks[i] = substituteBack(r.masks.Apply(c, mask), r.vars, r.echo)
	}
	show := append(slices.Clip(DefaultHeaders), r.Show...)
	return a.Render(append(show, args.headers...))
}

func argVals(d *datadriven.TestData, key string) []string {
	if a, ok := d.Arg(key); ok {
		return a.Vals
	}
	return nil
}

// let defines a variable from the case's input, repeated times times (with
// $i the repetition's number, from from on) and joined by sep.
func (r *Runner) let(t testing.TB, d *datadriven.TestData) string {
	t.Helper()
	if len(d.CmdArgs) == 0 || len(d.CmdArgs[0].Vals) != 0 {
		d.Fatalf(t, "let needs a variable name first: let NAME [times=N] [from=N] [sep=S]")
	}
	name := d.CmdArgs[0].Key
	times, from := 1, 0
	if d.HasArg("times") {
		d.ScanArgs(t, "times", &times)
	}
	if d.HasArg("from") {
		d.ScanArgs(t, "from", &from)
	}
	sep := ""
	if a, ok := d.Arg("sep"); ok {
		sep = a.SingleVal(t)
	}
	var b strings.Builder
	for i := range times {
		if i > 0 {
			b.WriteString(sep)
		}
		r.Set("i", strconv.Itoa(from+i), true)
		v, err := r.vars.Expand(d.Input)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		b.WriteString(v)
	}
	delete(r.vars, "i")
	r.Set(name, b.String(), true)
	return fmt.Sprintf("$%s: %d bytes", name, b.Len())
}

// jsonField returns the value at a dotted path of a JSON object: a string
// as its text, anything else as its JSON.
func jsonField(body []byte, path string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("the answer is not JSON: %w", err)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("no field %s: not inside an object", path)
		}
		if v, ok = m[k]; !ok {
			return "", fmt.Errorf("no field %s", path)
		}
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, _ := json.Marshal(v)
	return string(b), nil
}
