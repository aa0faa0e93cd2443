package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLocalmesosCommand runs `tiltai localmesos` in-process: it prints
// where it listens, serves /health, and stops cleanly when its context
// ends (as on SIGINT/SIGTERM).
func TestLocalmesosCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"tiltai", "localmesos", "--listen", "127.0.0.1:0", "--agents", "2", "--work_dir", t.TempDir()},
			strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`master listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatal("no listening address printed")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %s", resp.Status)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("localmesos did not stop")
	}
}

func TestLocalmesosCommandBadFlags(t *testing.T) {
	var stderr strings.Builder
	code := run(context.Background(), []string{"tiltai", "localmesos", "--resources", "cpus:x", "--agents", "-1"}, strings.NewReader(""), io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "cpus:x") || !strings.Contains(stderr.String(), "agents") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}
