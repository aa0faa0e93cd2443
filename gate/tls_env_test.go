package gate

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/tiltai/tiltai/gate/control"
)

var tlsTransports atomic.Int32

// registerTLS registers a zmq4 TLS transport under a fresh name (zmq4 keeps
// transports for the life of the process) and returns its scheme.
func registerTLS(t *testing.T, f control.TLSFiles) string {
	t.Helper()
	name := fmt.Sprintf("tiltaitls%d", tlsTransports.Add(1))
	if err := RegisterTLSTransport(name, f); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestTLSFromEnvAndZmq4Transport checks docs/reliability.md S3 from the
// environment a service is given: a hub started by FromEnv with
// TILTAI_TLS_CERT/KEY/CA speaks mutual TLS on its in-gate and its
// out-gates; plain zmq4 sockets reach it through RegisterTLSTransport with
// the cluster's files, and deliver nothing without TLS or with another CA's
// certificate.
func TestTLSFromEnvAndZmq4Transport(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	dir := t.TempDir()
	good := writeCA(t, dir, "cluster")
	rogue := writeCA(t, dir, "rogue")
	pull := zsock(t, zmq4.NewPull(ctx))
	if err := pull.Listen(registerTLS(t, good) + "://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	env := control.Env{TaskID: "t1", Service: "svc", TLS: good, Gates: []control.GateSpec{
		{Name: "in", Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"},
		{Name: "out", Dir: control.Out, Pattern: control.Push, Peers: []string{"tcp://" + pull.Addr().String()}},
	}}
	for _, kv := range env.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	h, err := FromEnv(ctx, testLogger(t), Options{HandshakeTimeout: time.Second, DrainTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	in, err := h.In("in")
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.Out("out")
	if err != nil {
		t.Fatal(err)
	}

	// Out: the hub dials the zmq4 socket listening on the TLS transport.
	if err := out.Send(ctx, []byte("to zmq4")); err != nil {
		t.Fatal(err)
	}
	if m, err := pull.Recv(); err != nil || len(m.Frames) != 1 || string(m.Frames[0]) != "to zmq4" {
		t.Fatalf("zmq4 pull over TLS got %q, %v", m.Frames, err)
	}

	// In: plain TCP and a rogue CA's certificate are refused, the cluster's
	// certificate delivers.
	port := strings.TrimPrefix(in.Addr(), "tcp://")
	for i, scheme := range []string{"tcp", registerTLS(t, rogue)} {
		push := zsock(t, zmq4.NewPush(ctx, zmq4.WithDialerRetry(-1)))
		push.Dial(scheme + "://" + port) // the rogue's handshake fails here or at the gate
		waitFor(t, 20*time.Second, scheme+" refused", func() bool { return in.Stats().Refused >= uint64(i+1) })
		push.Close()
	}
	push := zsock(t, zmq4.NewPush(ctx))
	if err := push.Dial(registerTLS(t, good) + "://" + port); err != nil {
		t.Fatal(err)
	}
	if err := push.Send(zmq4.NewMsgString("from zmq4")); err != nil {
		t.Fatal(err)
	}
	m, err := in.Recv(ctx)
	if err != nil || len(m) != 1 || string(m[0]) != "from zmq4" {
		t.Fatalf("gate got %q, %v", m, err)
	}
	if got := in.Stats().Received; got != 1 {
		t.Fatalf("the in-gate received %d messages; only the trusted peer may deliver", got)
	}
}
