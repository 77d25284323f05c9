// Command countersign is the one binary of countersign: it creates a store
// and organizations, serves the API, and simulates clients.
//
// Each subcommand reads as flags -> open -> serve -> wait for a signal ->
// stop: the work is done by the store, server and bench packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const topUsage = `countersign: did the real user, present and alive, see and approve exactly these values?

Usage:
  countersign init     --data DIR [--org NAME] [--json]    create the store and a first organization
  countersign org create --data DIR --name NAME [--json]   add an organization (server stopped)
  countersign serve    --data DIR [--addr 127.0.0.1:8080]  serve the API
  countersign simulate --cid CID --apikey KEY [--scenario all]
                                                           play client SDK scenarios against a server
  countersign device activate --code CODE --state FILE    play one user's authenticator app:
  countersign device answer --state FILE [--deny]          activate it, answer its approvals
  countersign bench    --spawn [--scenario suite]          measure the service under load (make bench)

Every flag also reads an environment variable: --addr from COUNTERSIGN_ADDR,
--embedding-dim from COUNTERSIGN_EMBEDDING_DIM, and so on; a flag wins.
Run 'countersign COMMAND --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr, os.Getenv))
}

// env is what a subcommand talks to: its output streams and the process
// environment (injectable for tests).
type env struct {
	prog           string // how the binary was invoked, for commands it prints
	stdout, stderr io.Writer
	getenv         func(string) string
	cmd            *command // the command whose flags were parsed last, for --help
}

// parse parses a subcommand's flags and remembers it for usage messages.
func (e *env) parse(c *command, args []string) error {
	e.cmd = c
	return c.parse(args, e.getenv)
}

// run executes one command line (argv[0] is the program) and returns the
// exit status: 0 success, 1 failure, 2 a command line to fix.
func run(argv []string, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{prog: "countersign", stdout: stdout, stderr: stderr, getenv: getenv}
	if len(argv) > 0 && argv[0] != "" {
		e.prog = argv[0]
	}
	args := argv[min(1, len(argv)):]
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return 2
	}
	name := args[0]
	var err error
	switch name {
	case "init":
		err = cmdInit(args[1:], e)
	case "org":
		err = cmdOrg(args[1:], e)
	case "serve":
		err = cmdServe(args[1:], e)
	case "simulate":
		err = cmdSimulate(args[1:], e)
	case "bench":
		err = cmdBench(args[1:], e)
	case "device":
		err = cmdDevice(args[1:], e)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "countersign: unknown command %q\n\n%s", name, topUsage)
		return 2
	}
	if len(args) > 1 && (name == "org" || name == "device") && e.cmd != nil {
		name = "org " + args[1]
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		if e.cmd != nil {
			e.cmd.usage(stdout)
		}
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "countersign %s: %v\nRun 'countersign %s --help' for its flags.\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(stderr, "countersign %s: %v\n", name, strings.TrimPrefix(err.Error(), "countersign "+name+": "))
		return 1
	}
}
