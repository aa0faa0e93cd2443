package elfstatic

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// build compiles a program that resolves a host name (so it uses package
// net, which links libc when cgo is on) with the given CGO_ENABLED.
func build(t *testing.T, cgo string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport \"net\"\n\nfunc main() { net.LookupHost(\"localhost\") }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=-buildvcs=false", "GO111MODULE=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build (CGO_ENABLED=%s): %v\n%s", cgo, err, b)
	}
	return out
}

func TestStaticGoBinary(t *testing.T) {
	info, err := Inspect(build(t, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Static() || info.String() != "statically linked" {
		t.Fatalf("CGO_ENABLED=0 binary: %+v (%s)", info, info)
	}
}

func TestStaticCgoBinaryIsDynamic(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler: cannot build a cgo binary")
	}
	info, err := Inspect(build(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Static() || info.Interp == "" || !strings.Contains(info.String(), "libc") {
		t.Fatalf("cgo binary: %+v (%s)", info, info)
	}
}

func TestStaticSystemBinaryIsDynamic(t *testing.T) {
	path := "/bin/ls"
	if _, err := os.Stat(path); err != nil {
		t.Skip("no /bin/ls")
	}
	ok, err := IsStatic(path)
	if err != nil || ok {
		t.Fatalf("IsStatic(%s) = %v, %v; want false (it is dynamic on every Linux distribution we run on)", path, ok, err)
	}
}

func TestStaticNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := IsStatic(p); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Fatalf("got %v", err)
	}
	if _, err := IsStatic(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file is static?")
	}
}
