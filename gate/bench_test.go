package gate

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/tiltai/tiltai/gate/control"
)

// Throughput, sender and receiver in one process over loopback, each variant
// beside its baselines so ratios can be read from one run:
//
//	go test -run '^$' -bench 'PushPull|ReqRep' ./gate
//
// gate uses Send and Recv, one message per call; gate-batch uses SendBatch
// and RecvBatch (batchLen messages per call, up to 4×batchLen received);
// gate-send uses Send one at a time and RecvBatch, the case of a producer
// that has one message at a time and a consumer that can take many (it
// shows what Recv's ownership costs, see docs/gates.md). Besides msgs/s each reports
// cpu-ns/msg, the process's CPU time (user and system, all threads) per
// message: on a machine shared with other work, wall-clock rates move with
// the load while CPU per message does not.
func BenchmarkPushPull(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("gate/%dB", size), func(b *testing.B) { benchGate(b, size, false, false) })
		b.Run(fmt.Sprintf("gate-batch/%dB", size), func(b *testing.B) { benchGate(b, size, true, true) })
		b.Run(fmt.Sprintf("gate-send/%dB", size), func(b *testing.B) { benchGate(b, size, false, true) })
		b.Run(fmt.Sprintf("zmq4/%dB", size), func(b *testing.B) { benchZmq4(b, size) })
		b.Run(fmt.Sprintf("tcp/%dB", size), func(b *testing.B) { benchTCP(b, size) })
	}
}

// batchLen is how many messages the batch variant moves per call.
const batchLen = 64

// meter measures a benchmark's wall and CPU time from its start.
type meter struct {
	b     *testing.B
	start time.Time
	cpu   time.Duration
}

func startMeter(b *testing.B) meter {
	b.ReportAllocs()
	b.ResetTimer()
	return meter{b: b, start: time.Now(), cpu: cpuTime()}
}

func (m meter) report(size int) {
	el := time.Since(m.start).Seconds()
	cpu := cpuTime() - m.cpu
	m.b.ReportMetric(float64(m.b.N)/el, "msgs/s")
	m.b.ReportMetric(float64(m.b.N*size)/el/1e6, "MB/s")
	m.b.ReportMetric(float64(cpu.Nanoseconds())/float64(m.b.N), "cpu-ns/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchGate(b *testing.B, size int, sendBatch, recvBatch bool) {
	ctx := ctxT(b, 5*time.Minute)
	_, in := inHub(b, "bench", control.Pull, Options{})
	_, out, mem := outHub(b, "bench", control.Push, Options{})
	mem.Publish(snap(1, "bench", control.Push, in.Addr()))
	if err := mem.WaitApplied(ctx, 1); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, size)
	done := make(chan error, 1)
	m := startMeter(b)
	go func() {
		if recvBatch {
			var batch Batch
			defer batch.Release()
			for got := 0; got < b.N; got += len(batch.Msgs) {
				if err := in.RecvBatch(ctx, &batch, 4*batchLen); err != nil {
					done <- err
					return
				}
			}
		} else {
			for range b.N {
				if _, err := in.Recv(ctx); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	if sendBatch {
		msgs := make([]Message, batchLen)
		for i := range msgs {
			msgs[i] = Message{payload}
		}
		for sent := 0; sent < b.N; {
			k := min(batchLen, b.N-sent)
			if _, err := out.SendBatch(ctx, msgs[:k]); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
	} else {
		for range b.N {
			if err := out.Send(ctx, payload); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	m.report(size)
}

func benchZmq4(b *testing.B, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pull := zmq4.NewPull(ctx)
	defer pull.Close()
	if err := pull.Listen("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	push := zmq4.NewPush(ctx)
	defer push.Close()
	if err := push.Dial("tcp://" + pull.Addr().String()); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, size)
	done := make(chan error, 1)
	m := startMeter(b)
	go func() {
		for range b.N {
			if _, err := pull.Recv(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := push.Send(zmq4.NewMsg(payload)); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	m.report(size)
}

// benchTCP is the wire's ceiling: a 4-byte length prefix, a buffered writer
// flushed only when its buffer fills (and at the end), a reader reusing one
// buffer.
func benchTCP(b *testing.B, size int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 64<<10)
		var hdr [4]byte
		buf := make([]byte, size)
		for range b.N {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				done <- err
				return
			}
			if _, err := io.ReadFull(br, buf[:binary.BigEndian.Uint32(hdr[:])]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	bw := bufio.NewWriterSize(c, 64<<10)
	payload := make([]byte, size)
	m := startMeter(b)
	var hdr [4]byte
	for range b.N {
		binary.BigEndian.PutUint32(hdr[:], uint32(size))
		bw.Write(hdr[:])
		bw.Write(payload)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	m.report(size)
}

// BenchmarkReqRep measures request/reply round trips, one at a time, and
// reports p50 and p99 latency.
func BenchmarkReqRep(b *testing.B) {
	b.Run("gate", benchGateReqRep)
	b.Run("zmq4", benchZmq4ReqRep)
	b.Run("tcp", benchTCPPingPong)
}

func latencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

func benchGateReqRep(b *testing.B) {
	ctx := ctxT(b, 5*time.Minute)
	_, rep := inHub(b, "rpc", control.Rep, Options{})
	_, req, mem := outHub(b, "rpc", control.Req, Options{})
	mem.Publish(snap(1, "rpc", control.Req, rep.Addr()))
	if err := mem.WaitApplied(ctx, 1); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			r, err := rep.RecvRequest(ctx)
			if err != nil {
				return
			}
			r.Reply(r.Msg...)
		}
	}()
	payload := make([]byte, 64)
	if _, err := req.Request(ctx, payload); err != nil { // connected and warm
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := req.Request(ctx, payload); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	latencies(b, lat)
}

func benchZmq4ReqRep(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep := zmq4.NewRep(ctx)
	defer rep.Close()
	if err := rep.Listen("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	req := zmq4.NewReq(ctx)
	defer req.Close()
	if err := req.Dial("tcp://" + rep.Addr().String()); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			m, err := rep.Recv()
			if err != nil {
				return
			}
			if rep.Send(m) != nil {
				return
			}
		}
	}()
	payload := make([]byte, 64)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := req.Send(zmq4.NewMsg(payload)); err != nil {
			b.Fatal(err)
		}
		if _, err := req.Recv(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	latencies(b, lat)
}

func benchTCPPingPong(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4+64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4+64)
	binary.BigEndian.PutUint32(buf, 64)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	latencies(b, lat)
}
