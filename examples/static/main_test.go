package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestStaticPipeline runs the whole demo on loopback and checks the
// printer's account: every message once, none missing.
func TestStaticPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"--count", "30000", "--encryptors", "3", "--size", "32"}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "received=30000 duplicates=0 missing=0") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--encryptors", "0"}, &out, &errb); err == nil {
		t.Fatal("no error")
	}
}
