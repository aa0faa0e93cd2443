package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/client"
)

func scaleCommand() *cli.Command {
	return &cli.Command{
		Name:      "scale",
		Usage:     "set a service's instance count and follow it until it has converged",
		ArgsUsage: "SERVICE N",
		Description: "Makes a new spec version with SERVICE at N instances (0 keeps it defined but stopped),\n" +
			"prints the change and shows progress as tiltai links submit does: new tasks start and\n" +
			"senders get their addresses; on the way down, senders stop using the tasks to remove\n" +
			"before they are drained and killed.\n\n" +
			"Examples:\n" +
			"  tiltai scale encryptor 5\n" +
			"  tiltai scale --wait=false printer 0",
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would change, change nothing"},
			&cli.IntFlag{Name: "if-match", DefaultText: "any", Usage: "scale only if the current spec version is `VERSION`"},
		}, waitFlags()...), schedulerFlags()...),
		Action: scale,
	}
}

func scale(c *cli.Context) error {
	start := time.Now()
	as, err := args(c, 2, "SERVICE N")
	if err != nil {
		return err
	}
	service := as[0]
	n, err := strconv.Atoi(as[1])
	if err != nil || n < 0 || n > linkspec.MaxInstances {
		return usageErr(c, "N must be a whole number from 0 to %d, not %q", linkspec.MaxInstances, as[1])
	}
	wc, err := writeConfigFrom(c)
	if err != nil {
		return err
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	baseline := wc.baseline(c.Context, cl)
	res, err := cl.Scale(c.Context, service, n, wc.options()...)
	switch {
	case errors.Is(err, client.ErrConflict):
		return conflict(c, cl, api, err, "tiltai links get")
	case errors.Is(err, client.ErrNotFound):
		hint := ""
		if st, stErr := cl.Status(c.Context); stErr == nil && len(st.Services) > 0 {
			var names []string
			for _, ss := range st.Services {
				names = append(names, ss.Name)
			}
			hint = "\n  the services are: " + strings.Join(names, ", ")
		}
		return cli.Exit(fmt.Sprintf("%s: cannot scale %s: %v%s", c.Command.HelpName, service, err, hint), exitFailed)
	case err != nil:
		return apiFail(c, api, "cannot scale "+service, err)
	}
	return changed(c, cl, api, res, wc.Wait, baseline, start)
}
