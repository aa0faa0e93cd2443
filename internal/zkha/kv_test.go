package zkha

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tiltai/tiltai/internal/zktest"
)

func TestEscapeKey(t *testing.T) {
	tests := []struct{ key, stored string }{
		{"framework_id", "framework_5fid"},
		{"tasks/web.1-a", "tasks/web.1-a"},
		{"tasks/.hidden", "tasks/_2ehidden"},
		{"a b/ü", "a_20b/_c3_bc"},
	}
	for _, tt := range tests {
		got, err := EscapeKey(tt.key)
		if err != nil || got != tt.stored {
			t.Errorf("EscapeKey(%q) = %q, %v; want %q", tt.key, got, err, tt.stored)
		}
		back, err := UnescapeKey(got)
		if err != nil || back != tt.key {
			t.Errorf("UnescapeKey(%q) = %q, %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b"} {
		if _, err := EscapeKey(bad); err == nil {
			t.Errorf("EscapeKey(%q) accepted", bad)
		}
	}
}

func FuzzEscapeKey(f *testing.F) {
	for _, s := range []string{"framework_id", "tasks/a.b", "x/_/y", "\x00", "a/.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		stored, err := EscapeKey(key)
		if err != nil {
			return
		}
		if err := CheckKey(stored); err != nil {
			t.Fatalf("EscapeKey(%q) = %q, not a valid store key: %v", key, stored, err)
		}
		back, err := UnescapeKey(stored)
		if err != nil || back != key {
			t.Fatalf("round trip of %q: %q, %v", key, back, err)
		}
	})
}

func TestKVLoadAndApply(t *testing.T) {
	s := zktest.Start(t)
	a := newClient(t, s.URL("/kv"))
	la, err := a.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	kv := la.KV()
	ctx := ctxFor(t, patience)
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10) // 1.6 MB: chunked
	batch := map[string][]byte{
		"framework_id":  []byte("fw-1"),
		"meta":          []byte(`{"serial":1}`),
		"spec":          big,
		"tasks/web.1":   []byte("t1"),
		"tasks/web_2":   []byte("t2"),
		"tasks/nothing": nil, // deleting what is not there is fine
	}
	if err := kv.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	all, err := kv.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(all)); strings.Join(got, ",") != "framework_id,meta,spec,tasks/web.1,tasks/web_2" {
		t.Fatalf("Load keys %v", got)
	}
	if !bytes.Equal(all["spec"], big) || string(all["tasks/web_2"]) != "t2" {
		t.Fatal("Load returned other values")
	}
	tasks, err := kv.Load(ctx, "tasks/")
	if err != nil || len(tasks) != 2 {
		t.Fatalf("Load(tasks/) = %v, %v", tasks, err)
	}

	// Updates and deletes, one transaction.
	if err := kv.Apply(ctx, map[string][]byte{"tasks/web.1": nil, "meta": []byte(`{"serial":2}`), "spec": []byte("small now")}); err != nil {
		t.Fatal(err)
	}
	all, _ = kv.Load(ctx, "")
	if _, ok := all["tasks/web.1"]; ok || string(all["meta"]) != `{"serial":2}` || string(all["spec"]) != "small now" {
		t.Fatalf("after update: %q", all)
	}
	if ch, _, _ := a.conn.Children(a.keyPath("spec")); len(ch) != 0 {
		t.Fatalf("chunks left under spec: %v", ch)
	}

	// A batch larger than one transaction is written in several.
	many := map[string][]byte{}
	for _, k := range []string{"tasks/x1", "tasks/x2", "tasks/x3"} {
		many[k] = bytes.Repeat([]byte{'x'}, 400<<10)
	}
	if err := kv.Apply(ctx, many); err != nil {
		t.Fatal(err)
	}
	tasks, _ = kv.Load(ctx, "tasks/")
	if len(tasks) != 4 {
		t.Fatalf("tasks after a split batch: %d", len(tasks))
	}

	// Someone else wrote meta since this KV saw it: a conflict, not an
	// overwrite.
	if _, err := la.Put(ctx, "meta", []byte("sneaky"), 1); err != nil {
		t.Fatal(err)
	}
	if err := kv.Apply(ctx, map[string][]byte{"meta": []byte(`{"serial":3}`)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("Apply over a foreign write = %v, want ErrConflict", err)
	}

	// A new leader takes over; the old one's KV is fenced.
	b := newClient(t, s.URL("/kv"))
	bch := campaignAsync(t, b, ctxFor(t, patience), "b:1")
	if err := la.Resign(); err != nil {
		t.Fatal(err)
	}
	lb := <-bch
	if lb == nil {
		t.Fatal("b not elected")
	}
	if err := kv.Apply(ctx, map[string][]byte{"framework_id": []byte("fw-2")}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("old leader's Apply = %v, want ErrNotLeader", err)
	}
	kvb := lb.KV()
	state, err := kvb.Load(ctx, "")
	if err != nil || string(state["framework_id"]) != "fw-1" || string(state["meta"]) != "sneaky" {
		t.Fatalf("new leader's Load = %q, %v", state["framework_id"], err)
	}
	if err := kvb.Apply(ctx, map[string][]byte{"meta": []byte(`{"serial":4}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestKVLoadWhenZooKeeperIsDown(t *testing.T) {
	s := zktest.Start(t)
	c := newClient(t, s.URL("/kv"))
	l, err := c.Campaign(ctxFor(t, patience), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	kv := l.KV()
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*sessionTimeout)
	defer cancel()
	if _, err := kv.Load(ctx, ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Load with ZooKeeper down = %v, want ErrUnavailable", err)
	}
}
