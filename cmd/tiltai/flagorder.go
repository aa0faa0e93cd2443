package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst lets flags come anywhere on the command line: urfave/cli (like
// Go's flag package) stops reading flags at a command's first positional
// argument, so `tiltai links graph spec.yaml --format text` would take
// "--format" for a file. It returns args with each command's flags moved
// before that command's positional arguments, using the flag definitions to
// know which flags take a value (bool ones take none; --flag=value is one
// argument). A lone "-" and negative numbers are arguments. "--" still ends
// the flags: everything after it stays positional, and a "--" is kept before
// positional arguments that would otherwise read as flags. A flag missing
// its value goes last, so that the parser says so. Arguments after something
// that is not a known command (such as the "help" command) are left as they
// are, as are a command's that skips flag parsing, and a shell-completion
// request, which must end with its flag.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) == 0 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	rest := args[1:]
scanCommand:
	for {
		var fl, pos []string
		dashdash := false
		i := 0
	scan:
		for ; i < len(rest); i++ {
			a := rest[i]
			switch {
			case a == "--":
				dashdash = true
				pos = append(pos, rest[i+1:]...)
				break scan
			case isFlag(a):
				fl = append(fl, a)
				if strings.Contains(a, "=") || !takesValue(flags, strings.TrimLeft(a, "-")) {
					continue
				}
				if i+1 == len(rest) {
					return append(out, fl...) // the parser reports the missing value
				}
				i++
				fl = append(fl, rest[i])
			case len(cmds) > 0 && len(pos) == 0:
				// A command's first positional argument names a subcommand;
				// after anything else, leave the rest to the parser.
				out = append(append(out, fl...), rest[i])
				sub := findCommand(cmds, a)
				if sub == nil || sub.SkipFlagParsing {
					// A command that skips flag parsing (tiltai python)
					// hands its arguments on as they are.
					return append(out, rest[i+1:]...)
				}
				flags, cmds, rest = sub.Flags, sub.Subcommands, rest[i+1:]
				continue scanCommand
			default:
				pos = append(pos, a)
			}
		}
		out = append(out, fl...)
		if slices.ContainsFunc(fl, func(a string) bool { return isHelp(flags, a) }) {
			// urfave/cli takes an argument after --help for a help topic.
			return out
		}
		// Go's flag parser would take "-x.yaml" or "-1" for a flag.
		if dashdash || slices.ContainsFunc(pos, func(a string) bool { return len(a) > 1 && a[0] == '-' }) {
			out = append(out, "--")
		}
		return append(out, pos...)
	}
}

// isHelp reports whether a asks for help: -h or --help, unless the command
// defines a flag of that name.
func isHelp(flags []cli.Flag, a string) bool {
	name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return (name == "h" || name == "help") && value != "false" && !slices.ContainsFunc(flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), name) })
}

// isFlag tells a flag from an argument.
func isFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(a, 64)
	return err != nil
}

// takesValue reports whether the flag called name is one that takes a
// value; unknown flags (help included) are taken for booleans.
func takesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				v, ok := f.(cli.DocGenerationFlag)
				return ok && v.TakesValue()
			}
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// onUsageError reports a flag the parser refused as every command reports
// its usage errors: on one line naming the command, with exit code 2, in
// place of urfave/cli's "Incorrect Usage" and the whole help.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = "unknown flag " + dashes(name)
	} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		msg = "flag " + dashes(name) + " needs a value"
	} else if m := invalidValue.FindStringSubmatch(msg); m != nil {
		msg = m[1] + dashes(m[2]) + m[3]
	}
	name := c.App.Name
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return cli.Exit(fmt.Sprintf("%s: %s (see %s --help)", name, msg, name), exitUsage)
}

var invalidValue = regexp.MustCompile(`^(invalid value ".*" for flag )(-[^:]+)(.*)$`)

// dashes writes a flag as users type it: --name, or -n for a letter.
func dashes(flag string) string {
	if name := strings.TrimLeft(flag, "-"); len(name) > 1 {
		return "--" + name
	}
	return flag
}

// setOnUsageError gives every command onUsageError.
func setOnUsageError(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
		setOnUsageError(c.Subcommands)
	}
}
