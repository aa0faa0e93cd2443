package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := &cli.App{
		Flags: []cli.Flag{&cli.BoolFlag{Name: "debug"}, &cli.StringFlag{Name: "config"}},
		Commands: []*cli.Command{
			{Name: "up", Flags: []cli.Flag{
				&cli.StringFlag{Name: "listen", Aliases: []string{"l"}},
				&cli.BoolFlag{Name: "open", Aliases: []string{"o"}},
				&cli.IntFlag{Name: "agents"},
				&cli.DurationFlag{Name: "wait"},
			}},
			{Name: "python", SkipFlagParsing: true},
			{Name: "links", Aliases: []string{"l"}, Subcommands: []*cli.Command{
				{Name: "validate", Flags: []cli.Flag{&cli.BoolFlag{Name: "strict"}}},
				{Name: "graph", Flags: []cli.Flag{&cli.StringFlag{Name: "format"}}},
			}},
		},
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"nothing", "", ""},
		{"already in order", "up --listen :1 spec.yaml", "up --listen :1 spec.yaml"},
		{"value flag after the argument", "up spec.yaml --listen 127.0.0.1:7071", "up --listen 127.0.0.1:7071 spec.yaml"},
		{"equals form", "up spec.yaml --listen=:1", "up --listen=:1 spec.yaml"},
		{"single dash", "up spec.yaml -listen :1", "up -listen :1 spec.yaml"},
		{"short alias takes a value", "up spec.yaml -l :1", "up -l :1 spec.yaml"},
		{"bool takes no value", "up --open spec.yaml", "up --open spec.yaml"},
		{"bool after the argument", "up spec.yaml -o", "up -o spec.yaml"},
		{"int and duration take values", "up a --agents 3 b --wait 1s", "up --agents 3 --wait 1s a b"},
		{"value that looks like a flag", "up a --listen -x", "up --listen -x a"},
		{"value flag last without value", "up a --listen", "up --listen"},
		{"negative number is an argument", "up a -1 --listen :1", "up --listen :1 -- a -1"},
		{"negative number first", "up -2.5 a", "up -- -2.5 a"},
		{"nested command", "links validate a.yaml --strict b.yaml", "links validate --strict a.yaml b.yaml"},
		{"command alias", "l graph a.yaml --format json", "l graph --format json a.yaml"},
		{"app flags stay with the app", "--config c.yaml links graph a.yaml --format text", "--config c.yaml links graph --format text a.yaml"},
		{"app bool flag", "--debug up a --listen :1", "--debug up --listen :1 a"},
		{"double dash ends flags", "links graph --format text -- -x.yaml --strict", "links graph --format text -- -x.yaml --strict"},
		{"flags before double dash move", "links graph a.yaml --format text -- -x.yaml", "links graph --format text -- a.yaml -x.yaml"},
		{"double dash with plain arguments", "links validate -- a.yaml", "links validate -- a.yaml"},
		{"stdin dash is an argument", "links validate - --strict", "links validate --strict -"},
		{"unknown flag kept, as a bool", "links validate a.yaml --nope b.yaml", "links validate --nope a.yaml b.yaml"},
		{"help after the argument", "links graph a.yaml --help", "links graph --help"},
		{"short help", "up a -h", "up -h"},
		{"unknown command left alone", "help links --format x", "help links --format x"},
		{"unknown subcommand left alone", "links nope a --strict", "links nope a --strict"},
		{"arguments of a command that parses no flags", "python -m mod encryptor --log-level warn", "python -m mod encryptor --log-level warn"},
		{"double dash of a command that parses no flags", "python -- --help", "python -- --help"},
		{"help of a command that parses no flags", "python x --help", "python x --help"},
		{"completion request left alone", "links graph a.yaml --generate-bash-completion", "links graph a.yaml --generate-bash-completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]string{"tiltai"}, strings.Fields(tt.in)...)
			want := append([]string{"tiltai"}, strings.Fields(tt.want)...)
			if got := flagsFirst(app, slices.Clone(in)); !slices.Equal(got, want) {
				t.Errorf("flagsFirst(%q)\n got %q\nwant %q", in, got, want)
			}
		})
	}
}

// TestFlagsAnywhere runs the whole program with flags after the arguments,
// and a file whose name starts with a dash after "--".
func TestFlagsAnywhere(t *testing.T) {
	spec, err := os.ReadFile("../../examples/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dashed := filepath.Join(dir, "-x.yaml")
	if err := os.WriteFile(dashed, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	warned := filepath.Join(dir, "warned.yaml")
	if err := os.WriteFile(warned, []byte("services:\n  a:\n    command: x\n    gates: {spare: pull}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"graph --format after the file", []string{"links", "graph", "../../examples/pipeline.yaml", "--format", "text"}, 0, "feeder", ""},
		{"diff --format json after the files", []string{"links", "diff", "../../examples/pipeline.yaml", "../../examples/pipeline.yaml", "--format", "json"}, 0, "[]", ""},
		{"validate --strict after the file", []string{"links", "validate", warned, "--strict"}, 1, "", "warning: gate a.spare"},
		{"a file named -x.yaml after --", []string{"links", "validate", "--", dashed}, 0, "ok: 3 services", ""},
		{"-x.yaml after -- with a flag after the file", []string{"links", "graph", "--", dashed, "--format"}, 2, "", ""},
		{"-x.yaml after -- for diff", []string{"links", "diff", "--format", "json", "--", dashed, dashed}, 0, "[]", ""},
		{"flags after -- are files", []string{"links", "validate", "--", dashed, "--strict"}, 2, "", "--strict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
				t.Fatalf("tiltai %q: exit %d (want %d)\nstdout %s(want %q)\nstderr %s(want %q)", tt.args, code, tt.code, out, tt.out, errs, tt.err)
			}
		})
	}
}
