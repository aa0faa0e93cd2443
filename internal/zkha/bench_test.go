package zkha

import (
	"context"
	"log/slog"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/tiltai/tiltai/internal/zktest"
)

// BenchmarkFencedPut is one conditional, fenced write of a small record (a
// task record): ZooKeeper multi of check(election node) + setData(version).
// BenchmarkRawSet beside it is the baseline, a bare conditional setData on
// the same server, so the cost of the fence can be read as a ratio.
func BenchmarkFencedPut(b *testing.B) {
	s := zktest.Start(b)
	c := benchClient(b, s.URL("/bench"))
	l, err := c.Campaign(context.Background(), "bench:1")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	v, err := l.Put(ctx, "tasks/t-1", make([]byte, 256), NoVersion)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if v, err = l.Put(ctx, "tasks/t-1", data, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawSet(b *testing.B) {
	s := zktest.Start(b)
	conn, _, err := zk.Connect([]string{s.Addr()}, sessionTimeout, zk.WithLogger(zkLogger{slog.New(slog.DiscardHandler)}))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Create("/raw", make([]byte, 256), 0, zk.WorldACL(zk.PermAll)); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 256)
	version := int32(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st, err := conn.Set("/raw", data, version)
		if err != nil {
			b.Fatal(err)
		}
		version = st.Version
	}
}

func benchClient(b *testing.B, raw string) *Client {
	u, err := ParseURL(raw)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(context.Background(), Config{URL: u, SessionTimeout: sessionTimeout})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}
