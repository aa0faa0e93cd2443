package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client"
)

func linksSubmitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "submit a link spec to the scheduler and follow it until it has converged",
		ArgsUsage: "FILE",
		Description: "Validates FILE here first: with any error, every problem is printed as FILE:LINE:COL\n" +
			"and nothing is sent (exit 1). Then submits it, prints what changes, and shows progress\n" +
			"until every task runs and every link table is acknowledged, a service keeps crashing\n" +
			"(exit 1, with its last failure), or --timeout passes (exit 5). Ctrl-C stops the wait,\n" +
			"not the change. FILE may be - for standard input.\n\n" +
			"With --if-match VERSION the spec replaces only that version (as printed by tiltai links\n" +
			"get); if someone changed it since, nothing changes (exit 4).\n\n" +
			"Examples:\n" +
			"  tiltai links submit examples/pipeline.yaml\n" +
			"  tiltai links submit --dry-run spec.yaml\n" +
			"  tiltai links submit --if-match 3 --timeout 10m spec.yaml",
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would change, change nothing"},
			&cli.IntFlag{Name: "if-match", DefaultText: "any", Usage: "submit only if the current spec version is `VERSION` (0: only if none was submitted yet)"},
		}, waitFlags()...), schedulerFlags()...),
		Action: linksSubmit,
	}
}

// readSource reads a spec file ("-": standard input) and validates it,
// printing every problem to stderr. It returns the name to submit it
// under, its bytes, and whether it has errors.
func readSource(c *cli.Context, path string) (name string, src []byte, ok bool, err error) {
	name, src, _, probs, err := loadSpec(c, path)
	return name, src, err == nil && probs.Err() == nil, err
}

func linksSubmit(c *cli.Context) error {
	start := time.Now()
	as, err := args(c, 1, "FILE")
	if err != nil {
		return err
	}
	wc, err := writeConfigFrom(c)
	if err != nil {
		return err
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	name, src, ok, err := readSource(c, as[0])
	if err != nil {
		return err
	}
	if !ok {
		return cli.Exit(fmt.Sprintf("%s: %s has errors; nothing was sent", c.Command.HelpName, name), exitFailed)
	}
	baseline := wc.baseline(c.Context, cl)
	res, err := cl.Submit(c.Context, name, src, wc.options()...)
	if errors.Is(err, client.ErrConflict) {
		return conflict(c, cl, api, err, "tiltai links diff "+as[0])
	}
	if err != nil {
		return apiFail(c, api, "cannot submit "+name, err)
	}
	return changed(c, cl, api, res, wc.Wait, baseline, start)
}

// changed prints the outcome of a write (submit, scale) and follows it.
func changed(c *cli.Context, cl *client.Client, api apiConfig, res scheduler.SubmitResult, wait waitConfig, baseline *scheduler.Status, start time.Time) error {
	printChanges(c.App.Writer, res.Changes)
	switch {
	case res.DryRun:
		fmt.Fprintf(c.App.Writer, "dry run: nothing was changed (spec version %d is current)\n", res.Version)
		return nil
	case res.Changed:
		fmt.Fprintf(c.App.Writer, "spec version %d accepted\n", res.Version)
	default:
		fmt.Fprintf(c.App.Writer, "spec version %d is current and already says this\n", res.Version)
	}
	if !wait.Wait {
		return nil
	}
	return follow(c, cl, api, wait, res.Version, baseline, start)
}

func printChanges(w io.Writer, changes []linkspec.Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "no changes")
	}
	for _, ch := range changes {
		fmt.Fprintln(w, termsafe.String(ch.String()))
	}
}

// conflict explains a 409: who changed the spec, and how to go on.
func conflict(c *cli.Context, cl *client.Client, api apiConfig, err error, diffCmd string) error {
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.CurrentVersion < 0 {
		return apiFail(c, api, "the spec changed meanwhile", err)
	}
	who := ""
	if cur, err := cl.Spec(c.Context); err == nil && cur.Version == ae.CurrentVersion {
		who = fmt.Sprintf(" (submitted as %s, accepted %s)", cur.Name, cur.Accepted.Local().Format(time.DateTime+" MST"))
		if cur.Name == "scaled.json" {
			who = fmt.Sprintf(" (a tiltai scale, accepted %s)", cur.Accepted.Local().Format(time.DateTime+" MST"))
		}
	}
	return cli.Exit(fmt.Sprintf("%s: nothing was changed: the spec is at version %d%s, not %d as --if-match says; someone changed it since\n"+
		"  see it: tiltai links get; see what yours would change now: %s\n"+
		"  then retry with --if-match %d (or without --if-match to replace whatever is current)",
		c.Command.HelpName, ae.CurrentVersion, who, c.Int("if-match"), diffCmd, ae.CurrentVersion), exitConflict)
}

func linksGetCommand() *cli.Command {
	return &cli.Command{
		Name:  "get",
		Usage: "print the scheduler's accepted link spec",
		Description: "Prints the accepted spec as it was submitted (--format source), or the normalised spec\n" +
			"with every default filled in (--format json). Its version, name and time go to stderr.\n" +
			"Exits 1 when no spec has been submitted yet.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "format", Value: "source", Usage: "source or json"},
		}, schedulerFlags()...),
		Action: linksGet,
	}
}

func linksGet(c *cli.Context) error {
	if _, err := args(c, 0, ""); err != nil {
		return err
	}
	format := c.String("format")
	if format != "source" && format != "json" {
		return usageErr(c, "unknown --format %q; use source or json", format)
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	spec, err := cl.Spec(c.Context)
	if err != nil {
		return apiFail(c, api, "cannot get the spec", err)
	}
	if spec.Version == 0 {
		return cli.Exit(fmt.Sprintf("%s: no spec has been submitted to %s yet; submit one with tiltai links submit FILE", c.Command.HelpName, api.URL), exitFailed)
	}
	fmt.Fprintf(c.App.ErrWriter, "spec version %d (%s, accepted %s)\n", spec.Version, termsafe.String(spec.Name), spec.Accepted.Local().Format(time.DateTime+" MST"))
	out := []byte(spec.Source)
	if format == "json" {
		var b bytes.Buffer
		if err := json.Indent(&b, spec.JSON, "", "  "); err != nil {
			return cli.Exit(fmt.Sprintf("%s: the scheduler's spec is not valid JSON: %v", c.Command.HelpName, err), exitUnreachable)
		}
		out = b.Bytes()
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	_, err = c.App.Writer.Write(out)
	return err
}

// linksDiffRemote is `tiltai links diff FILE`: what submitting FILE would
// change on the scheduler (a dry run).
func linksDiffRemote(c *cli.Context, path, format string) error {
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	name, src, ok, err := readSource(c, path)
	if err != nil {
		return err
	}
	if !ok {
		return cli.Exit(fmt.Sprintf("%s: %s has errors; fix them first", c.Command.HelpName, name), exitFailed)
	}
	res, err := cl.Submit(c.Context, name, src, client.DryRun())
	if err != nil {
		return apiFail(c, api, "cannot compare "+name+" with the scheduler's spec", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "compared with spec version %d at %s\n", res.Version, api.URL)
	if err := writeChanges(c.App.Writer, format, res.Changes); err != nil {
		return err
	}
	if len(res.Changes) > 0 && c.Bool("exit-code") {
		return cli.Exit("", 1)
	}
	return nil
}

func writeChanges(w io.Writer, format string, changes []linkspec.Change) error {
	if format == "json" {
		if changes == nil {
			changes = []linkspec.Change{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(changes)
	}
	printChanges(w, changes)
	return nil
}
