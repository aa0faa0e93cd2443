package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// asTiltai makes the test binary run as tiltai itself, so a test can start
// the real demo services as processes without building the binary.
const asTiltai = "TILTAICMD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asTiltai) == "1" {
		os.Exit(run(context.Background(), append([]string{"tiltai"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestConformanceControl runs `tiltai conformance control` against the real
// demo encryptor (every step passes) and against a service that is not one
// (it fails at hello, with the reason).
func TestConformanceControl(t *testing.T) {
	t.Setenv(asTiltai, "1")
	tests := []struct {
		name    string
		command []string
		code    int
		want    []string
	}{
		{"demo encryptor", []string{os.Args[0], "demo", "encryptor"}, 0,
			[]string{"PASS start", "PASS hello", "PASS ready", "PASS applied", "PASS heartbeat", "PASS drained", "PASS exit"}},
		{"not a service", []string{"/bin/sh", "-c", "sleep 30"}, 1,
			[]string{"PASS start", "FAIL hello      no hello on unix://"}},
		{"gone at once", []string{"/bin/sh", "-c", "echo cannot start >&2; exit 4"}, 1,
			[]string{"FAIL hello      service ended (exit status 4) while waiting for hello", "last line of its stderr: cannot start"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out, errOut bytes.Buffer
			args := append([]string{"tiltai", "conformance", "control", "--gate", "plaintext=pull@", "--gate", "ciphertext=push>", "--timeout", "3s", "--heartbeat", "50ms", "--"}, tt.command...)
			code := run(ctx, args, nil, &out, &errOut)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
			}
		})
	}
}

func TestParseConformanceFlags(t *testing.T) {
	cfg, err := parseConformanceFlags([]string{"plaintext=pull@", "ciphertext=push>"}, []string{"enc"})
	if err != nil || len(cfg.Gates) != 2 || cfg.Gates[0].Bind != "tcp://0.0.0.0:0" || cfg.Gates[1].Dir != "out" {
		t.Fatalf("cfg %+v, %v", cfg, err)
	}
	_, err = parseConformanceFlags([]string{"plaintext", "x=push>tcp://h:1", "y=pull>"}, nil)
	for _, want := range []string{`--gate "plaintext": want NAME=pattern@`, `gates[0]: gate "x" has static peers`, `--gate "y=pull>"`, "command: want"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want it to mention %q", err, want)
		}
	}
}
