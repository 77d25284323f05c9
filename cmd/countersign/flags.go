package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// errUsage marks a command line the user must fix: the exit status is 2.
var errUsage = errors.New("usage")

// usageError is a bad command line, reported with the command's usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand's flag set plus what its --help says.
type command struct {
	fs       *flag.FlagSet
	synopsis string // "countersign init --data DIR [flags]"
	about    string // one paragraph
	examples string // optional, shown after the flags
	metavar  map[string]string
	quoted   map[string]bool // string flags: their default is shown quoted
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet("countersign "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed by run, once
	return &command{fs: fs, synopsis: synopsis, about: about, metavar: map[string]string{}, quoted: map[string]bool{}}
}

// String, Bool, Int and Duration define a flag; meta names its value in --help.
func (c *command) String(name, meta, value, usage string) *string {
	c.metavar[name] = meta
	c.quoted[name] = true
	return c.fs.String(name, value, usage)
}

func (c *command) Bool(name string, value bool, usage string) *bool {
	return c.fs.Bool(name, value, usage)
}

func (c *command) Int(name, meta string, value int, usage string) *int {
	c.metavar[name] = meta
	return c.fs.Int(name, value, usage)
}

func (c *command) Duration(name, meta string, value time.Duration, usage string) *time.Duration {
	c.metavar[name] = meta
	return c.fs.Duration(name, value, usage)
}

// envName is the environment variable that sets a flag:
// --embedding-dim reads COUNTERSIGN_EMBEDDING_DIM.
func envName(flagName string) string {
	return "COUNTERSIGN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads the command line, then gives every flag the command line did
// not set the value of its environment variable, if that is set: flags win
// over the environment. Positional arguments are refused.
func (c *command) parse(args []string, getenv func(string) string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if c.fs.NArg() > 0 {
		return usagef("unexpected argument %q (every option is a --flag)", c.fs.Arg(0))
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	c.fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := c.fs.Set(f.Name, v); e != nil {
				err = usagef("invalid value %q for %s (--%s): %v", v, envName(f.Name), f.Name, e)
			}
		}
	})
	return err
}

// usage writes the command's --help: synopsis, description, and every flag
// with its environment variable and default.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags (each also read from its environment variable; a flag wins):\n", c.synopsis, wrap(c.about, 78))
	c.fs.VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		if m := c.metavar[f.Name]; m != "" {
			name += " " + m
		}
		fmt.Fprintf(w, "  %s\n", name)
		line := f.Usage
		switch {
		case c.quoted[f.Name] && f.DefValue != "":
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		case !c.quoted[f.Name] && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s":
			line += " (default " + f.DefValue + ")"
		}
		for _, l := range strings.Split(wrap(line, 70), "\n") {
			fmt.Fprintf(w, "      %s\n", l)
		}
		fmt.Fprintf(w, "      env %s\n", envName(f.Name))
	})
	if c.examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s", c.examples)
	}
}

// wrap breaks text into lines of at most width columns at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(text) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
