package wire

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiltai/tiltai/internal/recordio"
)

// MaxQueued is how many events may wait for a slow reader before the stream
// is cut off.
const MaxQueued = 100000

// Stream is one subscriber's event stream. Send never blocks: events queue
// until the serving goroutine writes them. The owner closes the stream with
// Close (after the queued events are written) or Abort (at once).
type Stream struct {
	Codec Codec
	ID    string

	mu      sync.Mutex
	queue   []Message
	closing bool
	notify  chan struct{}
	done    chan struct{} // closed when Serve returns
	gone    atomic.Bool   // the client went away or the stream ended

	// Dropped counts events not written: queued when the client left, or
	// discarded by a black hole.
	Dropped atomic.Int64
}

// NewStream returns a stream that serves events in the codec.
func NewStream(c Codec, id string) *Stream {
	return &Stream{Codec: c, ID: id, notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// Send queues an event. It reports false when the stream has ended or its
// queue overflowed (the stream is then cut off).
func (s *Stream) Send(m Message) bool {
	s.mu.Lock()
	if s.closing || s.gone.Load() {
		s.mu.Unlock()
		s.Dropped.Add(1)
		return false
	}
	if len(s.queue) >= MaxQueued {
		s.closing = true
		s.queue = nil
		s.mu.Unlock()
		s.Dropped.Add(1)
		s.wake()
		return false
	}
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	s.wake()
	return true
}

func (s *Stream) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Close ends the stream after the queued events are written.
func (s *Stream) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.wake()
}

// Done is closed when the stream has ended, for whatever reason.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Gone reports whether the stream has ended.
func (s *Stream) Gone() bool { return s.gone.Load() }

// ServeOptions tune a stream's writer.
type ServeOptions struct {
	Heartbeat         Message       // sent right away and then every interval (nil: none)
	HeartbeatInterval time.Duration // 0: no periodic heartbeat
	// BlackHole, when it returns true, discards every record instead of
	// writing it while the connection stays up: a half-open stream.
	BlackHole func() bool
	// RecordPerChunk writes and flushes each record on its own, so that
	// each travels in its own HTTP chunk, as Mesos' operator stream does.
	RecordPerChunk bool
}

// Serve writes the stream to w until it is closed, the client goes away or
// ctx ends. Headers must already be set; Serve writes the 200 status.
func (s *Stream) Serve(ctx context.Context, w http.ResponseWriter, opts ServeOptions) {
	defer func() {
		s.gone.Store(true)
		s.mu.Lock()
		s.Dropped.Add(int64(len(s.queue)))
		s.queue = nil
		s.mu.Unlock()
		close(s.done)
	}()
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	var tick <-chan time.Time
	if opts.HeartbeatInterval > 0 && opts.Heartbeat != nil {
		t := time.NewTicker(opts.HeartbeatInterval)
		defer t.Stop()
		tick = t.C
	}
	var buf []byte
	write := func(batch []Message) bool {
		buf = buf[:0]
		for _, m := range batch {
			if opts.BlackHole != nil && opts.BlackHole() {
				s.Dropped.Add(1)
				continue
			}
			data, err := Encode(s.Codec, m)
			if err != nil {
				s.Dropped.Add(1)
				continue
			}
			buf = recordio.Append(buf, data)
			if opts.RecordPerChunk {
				if _, err := w.Write(buf); err != nil {
					return false
				}
				if flusher != nil {
					flusher.Flush()
				}
				buf = buf[:0]
			}
		}
		if len(buf) == 0 {
			return true
		}
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for {
		s.mu.Lock()
		batch, closing := s.queue, s.closing
		s.queue = nil
		s.mu.Unlock()
		if len(batch) > 0 && !write(batch) {
			return
		}
		if closing && len(batch) == 0 {
			return
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.notify:
		case <-tick:
			if !write([]Message{opts.Heartbeat}) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
