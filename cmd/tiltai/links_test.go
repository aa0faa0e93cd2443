package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stuckReader is a standard input that never ends: it tells when it is
// first read, then blocks until the test is over.
type stuckReader struct {
	once    sync.Once
	reading chan struct{}
	release chan struct{}
}

func (r *stuckReader) Read([]byte) (int, error) {
	r.once.Do(func() { close(r.reading) })
	<-r.release
	return 0, io.EOF
}

// Ending the context (what Ctrl-C does in main) stops the links commands
// at once, even on an input that never ends.
func TestLinksCommandsStopWhenInterrupted(t *testing.T) {
	for _, args := range [][]string{
		{"links", "validate", "-"},
		{"links", "graph", "-"},
		{"links", "diff", "../../examples/pipeline.yaml", "-"},
	} {
		name := strings.Join(args[:2], " ")
		t.Run(args[1], func(t *testing.T) {
			in := &stuckReader{reading: make(chan struct{}), release: make(chan struct{})}
			defer close(in.release)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb bytes.Buffer
			code := make(chan int, 1)
			go func() { code <- run(ctx, append([]string{"tiltai"}, args...), in, &out, &errb) }()
			deadline := time.After(10 * time.Second)
			select {
			case <-in.reading:
			case c := <-code:
				t.Fatalf("ended before reading its input: exit %d\n%s", c, errb.String())
			case <-deadline:
				t.Fatal("never read its input")
			}
			cancel()
			select {
			case c := <-code:
				if want := "tiltai " + name + ": interrupted\n"; c != 130 || errb.String() != want {
					t.Fatalf("exit %d, stderr %q; want 130 and %q", c, errb.String(), want)
				}
			case <-deadline:
				t.Fatal("still running after its context ended")
			}
		})
	}
}

// The real binary, told by a real signal: it exits at once with 130 and a
// clear message while reading a standard input that has not ended.
func TestLinksValidateSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := buildTiltai(ctx, t, t.TempDir())
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			stdin, feed, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer feed.Close()
			var errb bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, "links", "validate", "-")
			cmd.Stdin, cmd.Stderr = stdin, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdin.Close()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// More than a pipe holds: when the write returns, the command
			// is reading, so its signal handling is in place.
			fed := make(chan error, 1)
			go func() {
				_, err := feed.Write(bytes.Repeat([]byte("# still coming\n"), 256<<10/15))
				fed <- err
			}()
			select {
			case err := <-fed:
				if err != nil {
					t.Fatal(err)
				}
			case err := <-exited:
				t.Fatalf("exited before reading its input: %v\n%s", err, errb.String())
			case <-ctx.Done():
				t.Fatal("the command never read its input")
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if cmd.ProcessState.ExitCode() != 130 || errb.String() != "tiltai links validate: interrupted\n" {
					t.Fatalf("%v, stderr %q; want exit status 130 and %q", err, errb.String(), "tiltai links validate: interrupted\n")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still running 10s after the signal")
			}
		})
	}
}

// A new image tag replaces the service's tasks, and the diff says from what
// to what.
func TestLinksDiffImage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, tag string) string {
		p := filepath.Join(dir, name)
		spec := "version: 1\nservices:\n  encryptor:\n    image: registry.example.com/team/encryptor:" + tag + "\n    instances: 3\n"
		if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old, next := write("old.yaml", "1.4"), write("new.yaml", "1.5")
	code, out, errs := runCLI(t, "", "links", "diff", old, next)
	want := "~ service encryptor: image changed; 3 tasks replaced, rolling, drain first (image registry.example.com/team/encryptor:1.4 -> :1.5)"
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("diff: %d %q %q", code, out, errs)
	}
	code, out, _ = runCLI(t, "", "links", "diff", "--format", "json", old, next)
	if code != 0 || !strings.Contains(out, `"image_to": "registry.example.com/team/encryptor:1.5"`) || !strings.Contains(out, `"replaces": true`) {
		t.Fatalf("diff json: %d %q", code, out)
	}
}
