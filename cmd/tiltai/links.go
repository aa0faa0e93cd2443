package main

import (
	"fmt"
	"io"
	"os"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/urfave/cli/v2"
)

func linksCommand() *cli.Command {
	return &cli.Command{
		Name:  "links",
		Usage: "check, draw, compare, submit and get link specs",
		Description: "A link spec names services, the gates each opens (push, pull, pub, sub, req, rep,\n" +
			"pair) and the links from out-gates to in-gates. See docs/linkspec.md.\n" +
			"FILE may be - for standard input.",
		Subcommands: []*cli.Command{
			{
				Name:      "validate",
				Usage:     "check link specs; print every problem as FILE:LINE:COL",
				ArgsUsage: "FILE...",
				Description: "Checks each file and lists every problem at once. Exits 1 if any file has an\n" +
					"error (with --strict, a warning too), 0 otherwise.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "strict", Usage: "treat warnings (e.g. a gate no link uses) as errors"},
				},
				Action: linksValidate,
			},
			{
				Name:      "graph",
				Usage:     "draw a link spec: Graphviz DOT, or a tree for the terminal",
				ArgsUsage: "FILE",
				Description: "Writes the services, their gates and the links between them. Render DOT with\n" +
					"  tiltai links graph spec.yaml | dot -Tsvg > spec.svg",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Value: "dot", Usage: "dot or text"},
				},
				Action: linksGraph,
			},
			{
				Name:      "diff",
				Usage:     "show what would change going from one spec to another, or from the scheduler's to FILE",
				ArgsUsage: "OLD NEW | FILE",
				Description: "Lists services added, removed, scaled or changed (and whether their tasks will\n" +
					"be replaced) and links added or removed. With two files, compares them here. With\n" +
					"one, asks the scheduler (--scheduler, TILTAI_SCHEDULER) what submitting FILE would\n" +
					"change (a dry run; nothing changes).",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "format", Value: "text", Usage: "text or json"},
					&cli.BoolFlag{Name: "exit-code", Usage: "exit 1 when the specs differ, as git diff --exit-code"},
				}, schedulerFlags()...),
				Action: linksDiff,
			},
			linksSubmitCommand(),
			linksGetCommand(),
		},
	}
}

// readSpec reads and parses one spec file ("-" is standard input), printing
// its problems to stderr. It returns nil when the spec has errors.
func readSpec(c *cli.Context, path string) (*linkspec.Spec, linkspec.Problems, error) {
	_, _, spec, probs, err := loadSpec(c, path)
	return spec, probs, err
}

// loadSpec reads one spec file ("-" is standard input) and parses it,
// printing its problems to stderr. Reading and parsing run on their own
// goroutine: standard input may never end and the YAML parser cannot be
// interrupted, yet Ctrl-C (or SIGTERM) must end the command at once, with
// the exit status shells give an interrupted command.
func loadSpec(c *cli.Context, path string) (name string, src []byte, spec *linkspec.Spec, probs linkspec.Problems, err error) {
	ctx := c.Context
	interrupted := func() error {
		return cli.Exit(fmt.Sprintf("%s: interrupted", c.Command.HelpName), exitInterrupted)
	}
	if ctx.Err() != nil {
		return "", nil, nil, nil, interrupted()
	}
	type result struct {
		name  string
		src   []byte
		spec  *linkspec.Spec
		probs linkspec.Problems
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		res.name, res.src, res.err = readSpecFile(c, path)
		if res.err == nil {
			res.spec, res.probs = linkspec.ParseWith(ctx, res.name, res.src, linkspec.ParseOptions{})
		}
		done <- res
	}()
	select {
	case res := <-done:
		if res.err == nil && ctx.Err() != nil {
			return "", nil, nil, nil, interrupted()
		}
		for _, p := range res.probs {
			fmt.Fprintln(c.App.ErrWriter, p)
		}
		return res.name, res.src, res.spec, res.probs, res.err
	case <-ctx.Done():
		return "", nil, nil, nil, interrupted()
	}
}

// readSpecFile reads at most one byte more than a spec may have, so an
// oversized one is refused by the parser without being read whole.
func readSpecFile(c *cli.Context, path string) (name string, src []byte, err error) {
	rd, name := c.App.Reader, "<stdin>"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", nil, cli.Exit(fmt.Sprintf("%s: cannot read the link spec: %v", c.Command.HelpName, err), exitUsage)
		}
		defer f.Close()
		rd, name = f, path
	}
	src, err = io.ReadAll(io.LimitReader(rd, linkspec.MaxSpecBytes+1))
	if err != nil {
		return "", nil, cli.Exit(fmt.Sprintf("%s: cannot read the link spec %s: %v", c.Command.HelpName, name, err), exitUsage)
	}
	return name, src, nil
}

func needArgs(c *cli.Context, n int, usage string) error {
	if c.NArg() != n && !(n < 0 && c.NArg() >= -n) {
		return cli.Exit(fmt.Sprintf("usage: %s %s (see %s --help)", c.Command.HelpName, usage, c.Command.HelpName), 2)
	}
	return nil
}

func linksValidate(c *cli.Context) error {
	if err := needArgs(c, -1, "FILE..."); err != nil {
		return err
	}
	failed := 0
	for _, path := range c.Args().Slice() {
		spec, probs, err := readSpec(c, path)
		if err != nil {
			return err
		}
		if probs.Err() != nil || (c.Bool("strict") && len(probs) > 0) {
			failed++
			continue
		}
		tasks := 0
		for _, s := range spec.Services {
			tasks += s.Instances
		}
		if path == "-" {
			path = "<stdin>"
		}
		fmt.Fprintf(c.App.Writer, "%s: ok: %d services (%d tasks), %d links\n", path, len(spec.Services), tasks, len(spec.Links))
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("tiltai links validate: %d of %d specs have problems", failed, c.NArg()), 1)
	}
	return nil
}

func linksGraph(c *cli.Context) error {
	if err := needArgs(c, 1, "FILE"); err != nil {
		return err
	}
	spec, probs, err := readSpec(c, c.Args().First())
	if err != nil {
		return err
	}
	if probs.Err() != nil {
		return cli.Exit("tiltai links graph: the spec has errors; fix them first (tiltai links validate)", 1)
	}
	switch c.String("format") {
	case "dot":
		return linkspec.WriteDOT(c.App.Writer, spec)
	case "text":
		return linkspec.WriteText(c.App.Writer, spec)
	}
	return cli.Exit(fmt.Sprintf("tiltai links graph: unknown --format %q; use dot or text", c.String("format")), 2)
}

func linksDiff(c *cli.Context) error {
	paths := c.Args().Slice()
	if len(paths) != 1 && len(paths) != 2 {
		return cli.Exit("usage: tiltai links diff OLD NEW, or tiltai links diff FILE to compare with the scheduler's spec (see tiltai links diff --help)", 2)
	}
	format := c.String("format")
	if format != "text" && format != "json" {
		return cli.Exit(fmt.Sprintf("tiltai links diff: unknown --format %q; use text or json", format), 2)
	}
	if len(paths) == 1 {
		return linksDiffRemote(c, paths[0], format)
	}
	var specs [2]*linkspec.Spec
	for i, path := range paths {
		spec, probs, err := readSpec(c, path)
		if err != nil {
			return err
		}
		if probs.Err() != nil {
			return cli.Exit(fmt.Sprintf("tiltai links diff: %s has errors; fix them first", path), 1)
		}
		specs[i] = spec
	}
	changes := linkspec.Diff(specs[0], specs[1])
	if err := writeChanges(c.App.Writer, format, changes); err != nil {
		return err
	}
	if len(changes) > 0 && c.Bool("exit-code") {
		return cli.Exit("", 1)
	}
	return nil
}
