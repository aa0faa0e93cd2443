// Command tiltai is the single Tiltai binary: link-spec tools, and (as they
// land) the scheduler, the executor, the embedded Mesos master and `tiltai up`.
// Each subcommand turns its flags into a typed config and hands it to a package;
// no business logic lives here.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/termsafe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, the default action comes back: a second
	// Ctrl-C ends a command that is taking too long to stop cleanly.
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code, so tests can drive
// the whole program in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	app.OnUsageError = onUsageError
	setOnUsageError(app.Commands)
	err := app.RunContext(ctx, flagsFirst(app, args))
	if err == nil {
		return 0
	}
	var coder cli.ExitCoder
	if errors.As(err, &coder) {
		if msg := coder.Error(); msg != "" {
			// Messages carry the scheduler's words (errors, problems):
			// nothing it sends may act on the terminal.
			fmt.Fprintln(stderr, termsafe.Text(msg))
		}
		return coder.ExitCode()
	}
	fmt.Fprintf(stderr, "tiltai: %s\n", termsafe.Text(err.Error()))
	return 1
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "tiltai",
		Usage: "wire microservice gates from outside the code, on Mesos",
		Description: "Tiltai gives services gates: in-process ZeroMQ interfaces whose peers are\n" +
			"wired by a link spec and rewired live. See docs/ for the link-spec format.",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by run, with the right exit code.
		ExitErrHandler:       func(*cli.Context, error) {},
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			upCommand(),
			linksCommand(),
			psCommand(),
			drainCommand(),
			reactivateCommand(),
			scaleCommand(),
			eventsCommand(),
			logsCommand(),
			schedulerCommand(),
			versionCommand(),
			executorCommand(),
			localmesosCommand(),
			demoCommand(),
			pythonCommand(),
			deployCommand(),
			conformanceCommand(),
		},
	}
}
