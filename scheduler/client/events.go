package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// MaxEventBytes bounds one line, and one event's data, of the event stream:
// the reader never buffers more, whatever the server sends.
const MaxEventBytes = 1 << 20

// ErrEventTooLarge: a line or an event of the stream was over MaxEventBytes.
// The stream cannot go on after it.
var ErrEventTooLarge = fmt.Errorf("event stream line or event larger than %d bytes", MaxEventBytes)

// EventStream reads GET /v1/events. It is not safe for concurrent use.
type EventStream struct {
	ctx    context.Context
	body   io.ReadCloser
	cancel context.CancelFunc
	rd     *EventReader
}

// Events opens the scheduler's event stream. It lasts until ctx ends, Close
// is called, or the scheduler ends it.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	ctx, cancelStream := context.WithCancel(ctx)
	resp, cancel, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/events", stream: true,
		header: http.Header{"Accept": {"text/event-stream"}}})
	if err != nil {
		cancelStream()
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		cancel()
		cancelStream()
		return nil, fmt.Errorf("GET /v1/events answered %q, not an event stream; is this a Tiltai scheduler?", resp.Header.Get("Content-Type"))
	}
	return &EventStream{
		ctx:    ctx,
		body:   resp.Body,
		cancel: func() { cancel(); cancelStream() },
		rd:     NewEventReader(resp.Body),
	}, nil
}

// Next returns the next event. It returns io.EOF when the scheduler ended
// the stream, ErrEventTooLarge when it sent too much at once, and the
// context's error once it has ended or Close was called. After a
// *MalformedEventError, Next may be called again.
func (s *EventStream) Next() (apitypes.Event, error) {
	ev, err := s.rd.Next()
	if err != nil && s.ctx.Err() != nil {
		// The read failed because the stream was cancelled: say so, not
		// how the body reader put it.
		var malformed *MalformedEventError
		if !errors.As(err, &malformed) {
			return ev, s.ctx.Err()
		}
	}
	return ev, err
}

// Close ends the stream; a Next in progress returns.
func (s *EventStream) Close() error {
	s.cancel()
	return s.body.Close()
}

// MalformedEventError: an event whose data is not a JSON event. The stream
// goes on.
type MalformedEventError struct {
	Type string // the event: field
	Data string // the start of the data
	Err  error
}

func (e *MalformedEventError) Error() string {
	return fmt.Sprintf("malformed %q event %q: %v", e.Type, e.Data, e.Err)
}

func (e *MalformedEventError) Unwrap() error { return e.Err }

// EventReader parses Server-Sent Events (text/event-stream) carrying
// scheduler events as JSON data. Lines end with LF, CRLF or CR; comment
// lines (":…", the keepalives) are skipped; several data lines are joined
// with LF; an event is dispatched at a blank line, and an unfinished one at
// the end of the stream is dropped, as the SSE standard says.
type EventReader struct {
	sc    *bufio.Scanner
	typ   string
	data  bytes.Buffer
	fatal error
}

// NewEventReader reads events from r.
func NewEventReader(r io.Reader) *EventReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxEventBytes)
	sc.Split(scanLines)
	return &EventReader{sc: sc}
}

// Next returns the next event; see EventStream.Next.
func (r *EventReader) Next() (apitypes.Event, error) {
	if r.fatal != nil {
		return apitypes.Event{}, r.fatal
	}
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if len(line) == 0 {
			if r.data.Len() == 0 {
				r.typ = ""
				continue
			}
			return r.dispatch()
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			r.typ = string(value)
		case "data":
			if r.data.Len()+len(value)+1 > MaxEventBytes {
				r.fatal = ErrEventTooLarge
				return apitypes.Event{}, r.fatal
			}
			r.data.Write(value)
			r.data.WriteByte('\n')
		}
		// id and retry: the scheduler's ids are its event sequence numbers,
		// also in the data; it does not resume from Last-Event-ID.
	}
	r.fatal = r.sc.Err()
	switch {
	case errors.Is(r.fatal, bufio.ErrTooLong):
		r.fatal = ErrEventTooLarge
	case r.fatal == nil:
		r.fatal = io.EOF
	}
	return apitypes.Event{}, r.fatal
}

func (r *EventReader) dispatch() (apitypes.Event, error) {
	data := bytes.TrimSuffix(r.data.Bytes(), []byte("\n"))
	typ := r.typ
	r.typ = ""
	defer r.data.Reset()
	var ev apitypes.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		snippet := string(data)
		if len(snippet) > 80 {
			snippet = snippet[:80] + "…"
		}
		return apitypes.Event{}, &MalformedEventError{Type: typ, Data: snippet, Err: err}
	}
	if ev.Type == "" {
		ev.Type = typ
	}
	return ev, nil
}

// scanLines splits at LF, CRLF or a lone CR.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	}
	if data[i] == '\n' {
		return i + 1, data[:i], nil
	}
	// CR: a following LF belongs to it; at the end of the buffer, look
	// further before deciding.
	if i+1 < len(data) {
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	}
	if atEOF {
		return i + 1, data[:i], nil
	}
	return 0, nil, nil
}

// Dropped reports how many events the scheduler dropped before a "dropped"
// event, because this reader was too slow.
func Dropped(ev apitypes.Event) (n uint64, ok bool) {
	if ev.Type != "dropped" {
		return 0, false
	}
	if f, isNum := ev.Data["events"].(float64); isNum && f >= 0 {
		return uint64(f), true
	}
	return 0, true
}
