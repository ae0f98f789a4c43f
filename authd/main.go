// Command authd is a login daemon for apps behind nginx auth_request.
//
// main → run → dispatch picks a command. "serve" is Main (serve.go): Open
// builds the logger, the stores (stores.go; one Redis client with
// store = "redis") and the server, and binds the listeners; Run serves and
// calls Reload (reload.go) on SIGHUP; Close shuts down in order. The other commands
// (usercmd.go, sessioncmd.go, machinecmd.go, explain.go) open the state they
// touch with the same constructors as Main, so a command and the daemon
// never open a store differently. Config, rules and check-config are in
// load.go. The README's "Development" section walks a request and a reload.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/authd/authd/authd/internal/hasher"
)

const defaultConfig = "/etc/authd/authd.toml"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks a command-line mistake: exit code 2.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

// errCannotRead marks input a command could not read at all (doctor's
// configurations): exit code 2, without the usage hint.
type errCannotRead struct{ err error }

func (e errCannotRead) Error() string { return e.err.Error() }
func (e errCannotRead) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return errUsage{fmt.Sprintf(format, a...)} }

// run executes one command and returns the process exit code:
// 0 ok, 1 error, 2 usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	var ue errUsage
	var ce errCannotRead
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "authd: %v\n", err)
		fmt.Fprintln(stderr, "run 'authd help' for usage")
		return 2
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "authd: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "authd: %v\n", err)
		return 1
	}
}

const usage = `usage: authd <command> [flags]

commands:
  serve -config PATH                 run the daemon
  check-config -config PATH          validate config and users file (exit 0/1)
  user add [-groups a,b] [-email E] [-name "Display Name"] NAME
  user passwd|del|lock|unlock NAME
  user set [-groups a,b] [-email E] [-name N] NAME
  user list
  user reset-link [-expires 1h] [-no-mail] NAME   print a single-use password-reset link (mailed too with [smtp])
  user import-htpasswd FILE
  user import -from file|redis -to redis|file [-overwrite]   copy users between stores, hashes untouched
  invite create [-user NAME] [-groups a,b] [-email E] [-expires 72h] [-no-mail]
                                     print a single-use invite link (mailed to -email with [smtp])
  invite list | invite revoke ID
  session list [-user NAME]
  session revoke -user NAME | -all
  token create -user NAME -name LABEL [-expires 90d]   print a new API token (shown once)
  token list [-user NAME] | token revoke ID|TOKEN
  key create -user NAME -name LABEL [-expires 90d]     print "KEY_ID SECRET" (shown once)
  key list [-user NAME] | key revoke ID
  sign -key ID [-secret-file F] [-method GET] [-debug] URL   print a signed Authorization header line
  explain -path P [-user NAME] [-method M] [-ip ADDR] [-host H]
                                     which rule decides a request, and why
  nginx [-out DIR] [-name NAME]      write the nginx snippets for this config (listen, prefix)
  doctor [-nginx-conf F | -nginx-file F | -nginx-T F|-] [-json]
                                     check nginx's config against authd's: 0 clean, 1 findings, 2 unreadable
  hash                               hash a password read from stdin
  version                            print version, commit and Go version (also --version)

Every command takes -config PATH (default ` + defaultConfig + `).
Passwords are read from a no-echo prompt, or one line on stdin when it is not a terminal.
`

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage{"no command"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(ctx, rest, stdout, stderr)
	case "user":
		return cmdUser(ctx, rest, stdin, stdout, stderr)
	case "invite":
		return cmdInvite(ctx, rest, stdout, stderr)
	case "session":
		return cmdSession(ctx, rest, stdout, stderr)
	case "token":
		return cmdToken(ctx, rest, stdout, stderr)
	case "key":
		return cmdKey(ctx, rest, stdout, stderr)
	case "sign":
		return cmdSign(rest, stdin, stdout, stderr)
	case "explain":
		return cmdExplain(ctx, rest, stdout, stderr)
	case "nginx":
		return cmdNginx(rest, stdout, stderr)
	case "doctor":
		return cmdDoctor(rest, stdin, stdout, stderr)
	case "hash":
		return cmdHash(rest, stdin, stdout, stderr)
	case hasherCommand:
		// Not in the usage: serve starts it, as its hashing child.
		return hasher.Serve(stdin, stdout)
	case "version", "-version", "--version":
		return cmdVersion(rest, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

// newFlags returns a flag set with the shared -config flag.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", defaultConfig, "config file")
	return fs, cfg
}

// parseArgs parses flags that may come before or after positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
