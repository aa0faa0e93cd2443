package gate

import (
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

func TestPushPullBasic(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, in := inHub(t, "work", control.Pull, fastOpts)
	_, out, mem := outHub(t, "work", control.Push, fastOpts)
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	if err := mem.WaitApplied(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c := collect(ctx, in, 0)
	const n = 20000
	for i := range uint64(n) {
		if err := out.Send(ctx, seqMsg(i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "all messages", func() bool { return c.count() == n })
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(n) {
		if c.seen[i] != 1 {
			t.Fatalf("message %d seen %d times", i, c.seen[i])
		}
	}
	st := out.Stats()
	if st.Sent != n || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}
