package localmesos

import (
	"context"
	"errors"
	"net"
	"sync"
)

// memListener is an in-memory listener: connections are net.Pipe pairs.
// Agents serve their HTTP API on one besides TCP so that thousands of
// in-process executors speak HTTP to them without a file descriptor each.
type memListener struct {
	addr  memAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func newMemListener(name string) *memListener {
	return &memListener{addr: memAddr(name), conns: make(chan net.Conn), done: make(chan struct{})}
}

var errListenerClosed = errors.New("in-memory listener closed")

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errListenerClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

func (l *memListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, &net.OpError{Op: "dial", Net: "mem", Err: errListenerClosed}
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}
