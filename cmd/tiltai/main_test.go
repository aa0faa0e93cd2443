package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the whole program in-process.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"tiltai"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// buildTiltai builds the tiltai binary into dir, for tests that run it as a
// real process.
func buildTiltai(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tiltai")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestLinksValidate(t *testing.T) {
	code, out, errs := runCLI(t, "", "links", "validate", "../../examples/pipeline.yaml")
	if code != 0 || !strings.Contains(out, "ok: 3 services (5 tasks), 2 links") || errs != "" {
		t.Fatalf("code %d\nstdout %s\nstderr %s", code, out, errs)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("services:\n  a:\n    command: x\n    instances: -2\n    gates: {out: push}\nlinks:\n  - {from: a.out, to: b.in}\n"), 0o644)
	code, _, errs = runCLI(t, "", "links", "validate", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{bad + ":4:16: instances -2 is out of range", bad + ":7:23: unknown service \"b\" in link end b.in; declare it under services", "1 of 1 specs have problems"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}

	// Standard input, and --strict on a warning.
	spec := "services:\n  a:\n    command: x\n    gates: {spare: pull}\n"
	if code, out, _ := runCLI(t, spec, "links", "validate", "-"); code != 0 || !strings.Contains(out, "<stdin>: ok") {
		t.Fatalf("stdin: code %d out %q", code, out)
	}
	if code, _, errs := runCLI(t, spec, "links", "validate", "--strict", "-"); code != 1 || !strings.Contains(errs, "<stdin>:4:13: warning: gate a.spare") {
		t.Fatalf("strict: code %d errs %q", code, errs)
	}

	if code, _, errs := runCLI(t, "", "links", "validate"); code != 2 || !strings.Contains(errs, "usage: tiltai links validate FILE...") {
		t.Fatalf("no args: code %d errs %q", code, errs)
	}
	if code, _, errs := runCLI(t, "", "links", "validate", "/nonexistent.yaml"); code != 2 || !strings.Contains(errs, "cannot read the link spec") {
		t.Fatalf("missing file: code %d errs %q", code, errs)
	}
}

func TestLinksGraphAndDiff(t *testing.T) {
	code, out, _ := runCLI(t, "", "links", "graph", "../../examples/pipeline.yaml")
	if code != 0 || !strings.HasPrefix(out, "digraph tiltai {") {
		t.Fatalf("graph: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", "links", "graph", "--format", "text", "../../examples/pipeline.yaml")
	if code != 0 || !strings.Contains(out, "plaintext (push) ──► encryptor.plaintext (pull ×3)") {
		t.Fatalf("graph text: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, "", "links", "graph", "--format", "png", "../../examples/pipeline.yaml"); code != 2 || !strings.Contains(errs, "use dot or text") {
		t.Fatalf("bad format: %d %q", code, errs)
	}

	scaled := filepath.Join(t.TempDir(), "scaled.yaml")
	data, _ := os.ReadFile("../../examples/pipeline.yaml")
	os.WriteFile(scaled, bytes.Replace(data, []byte("instances: 3"), []byte("instances: 5"), 1), 0o644)
	code, out, _ = runCLI(t, "", "links", "diff", "../../examples/pipeline.yaml", scaled)
	if code != 0 || strings.TrimSpace(out) != "~ service encryptor: instances 3 -> 5, scale up" {
		t.Fatalf("diff: %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "", "links", "diff", "--exit-code", "../../examples/pipeline.yaml", scaled); code != 1 {
		t.Fatalf("diff --exit-code: %d", code)
	}
	code, out, _ = runCLI(t, "", "links", "diff", "--format", "json", "../../examples/pipeline.yaml", "../../examples/pipeline.yaml")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("diff json: %d %q", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "tiltai ") {
		t.Fatalf("%d %q", code, out)
	}
	code, out, _ = runCLI(t, "", "version", "--json")
	if code != 0 || !strings.Contains(out, `"go": "go1.`) {
		t.Fatalf("%d %q", code, out)
	}
}
