package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ProtocolVersion is the control protocol version this package speaks.
const ProtocolVersion = 1

// MaxLineBytes bounds one control message, newline included. A longer line is
// a protocol error and the connection is dropped.
const MaxLineBytes = 1 << 20

// Bounds on what one message may carry, so a confused peer cannot make the
// other side hold unbounded state.
const (
	maxGates       = 1024
	maxAppCounters = 1024
	maxCounterName = 128
	maxTextField   = 4096
)

// Message types. Service → executor: hello, gates, ready, applied, rejected,
// status, drained. Executor → service: welcome, snapshot, drain. Either way:
// error (sent just before closing).
const (
	TypeHello    = "hello"
	TypeWelcome  = "welcome"
	TypeGates    = "gates"
	TypeReady    = "ready"
	TypeSnapshot = "snapshot"
	TypeApplied  = "applied"
	TypeRejected = "rejected"
	TypeStatus   = "status"
	TypeDrain    = "drain"
	TypeDrained  = "drained"
	TypeError    = "error"
)

// Message is one line of the control protocol. Which fields are set depends on
// Type; see docs/control-protocol.md.
type Message struct {
	Type        string     `json:"type"`
	Protocol    int        `json:"protocol,omitempty"`     // hello, welcome
	TaskID      string     `json:"task_id,omitempty"`      // hello
	Service     string     `json:"service,omitempty"`      // hello
	PID         int        `json:"pid,omitempty"`          // hello
	Gates       []GateInfo `json:"gates,omitempty"`        // hello, gates
	HeartbeatMS int64      `json:"heartbeat_ms,omitempty"` // welcome
	Snapshot    *Snapshot  `json:"snapshot,omitempty"`     // snapshot
	Version     uint64     `json:"version,omitempty"`      // applied, rejected
	Status      *Status    `json:"status,omitempty"`       // status
	TimeoutMS   int64      `json:"timeout_ms,omitempty"`   // drain
	StopMS      int64      `json:"stop_ms,omitempty"`      // drain
	Error       string     `json:"error,omitempty"`        // rejected, error
}

// GateInfo describes one gate a service has opened.
type GateInfo struct {
	Name    string    `json:"name"`
	Dir     Direction `json:"dir"`
	Pattern Pattern   `json:"pattern"`
	// Bound is an in-gate's actual listening address once bound, else "".
	Bound string `json:"bound,omitempty"`
}

// Status is a service's heartbeat: its gates' counters and its own
// application counters.
type Status struct {
	Seq      uint64                  `json:"seq"`
	Applied  uint64                  `json:"applied"`
	Ready    bool                    `json:"ready"`
	Draining bool                    `json:"draining,omitempty"`
	Gates    map[string]GateCounters `json:"gates"`
	App      map[string]int64        `json:"app,omitempty"`
}

// GateCounters are one gate's counters. Counts are cumulative since the gate
// opened; QueueDepth, InFlight and the peer counts are current values.
type GateCounters struct {
	Pattern Pattern   `json:"pattern"`
	Dir     Direction `json:"dir"`
	// Sent counts messages written to a peer connection.
	Sent uint64 `json:"sent"`
	// Received counts messages handed to the application.
	Received uint64 `json:"received"`
	// Dropped counts messages the gate lost or discarded, for any reason
	// (pub queue full or no subscriber, undeliverable at close, …).
	Dropped uint64 `json:"dropped"`
	// StopDropped counts, of Dropped, the messages an out-gate still held
	// (queued or unacknowledged) when it was closed and no peer took them
	// before the deadline: at a stop, the stop deadline the executor gave.
	StopDropped uint64 `json:"stop_dropped,omitempty"`
	// Rerouted counts messages taken back from a peer that died or was drained
	// past its deadline, and queued again for the others.
	Rerouted uint64 `json:"rerouted"`
	// Refused counts incoming connections refused: bad handshake, garbage,
	// oversized frames, too many connections, draining.
	Refused uint64 `json:"refused"`
	// QueueDepth is messages queued in the gate (to send or to be received).
	QueueDepth int `json:"queue_depth"`
	// InFlight is messages sent to Tiltai peers and not yet acknowledged.
	InFlight int `json:"in_flight"`
	// Peers is connected peers; PeersWanted the out-gate's configured peers.
	Peers       int `json:"peers"`
	PeersWanted int `json:"peers_wanted"`
}

// ErrUnknownType is returned by Decode for a well-formed message of a type this
// version does not know. Receivers ignore such messages (forward
// compatibility); any other decode error drops the connection.
var ErrUnknownType = errors.New("unknown control message type")

// Encode renders m as one protocol line (JSON and '\n').
func Encode(m Message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s message: %w", m.Type, err)
	}
	if len(b)+1 > MaxLineBytes {
		return nil, fmt.Errorf("cannot encode %s message: %d bytes exceeds the %d-byte line limit", m.Type, len(b)+1, MaxLineBytes)
	}
	return append(b, '\n'), nil
}

// Decode parses and validates one protocol line (without or with its '\n').
func Decode(line []byte) (Message, error) {
	line = bytes.TrimRight(line, "\r\n")
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		return Message{}, fmt.Errorf("control message is not a JSON object: %w", err)
	}
	if err := m.validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m *Message) validate() error {
	text := func(field, v string) error {
		if len(v) > maxTextField {
			return fmt.Errorf("%s message: %s is %d bytes (at most %d)", m.Type, field, len(v), maxTextField)
		}
		return nil
	}
	switch m.Type {
	case TypeHello:
		if m.Protocol < 1 {
			return fmt.Errorf("hello.protocol %d: want ≥ 1", m.Protocol)
		}
		if err := errors.Join(text("task_id", m.TaskID), text("service", m.Service)); err != nil {
			return err
		}
		return validGates(m.Type, m.Gates)
	case TypeGates:
		return validGates(m.Type, m.Gates)
	case TypeWelcome:
		if m.Protocol < 1 || m.HeartbeatMS < 0 {
			return fmt.Errorf("welcome message: protocol %d, heartbeat_ms %d (want ≥ 1, ≥ 0)", m.Protocol, m.HeartbeatMS)
		}
	case TypeSnapshot:
		if m.Snapshot == nil {
			return errors.New("snapshot message: no snapshot field")
		}
		if err := m.Snapshot.Validate(); err != nil {
			return fmt.Errorf("snapshot message: %w", err)
		}
	case TypeApplied, TypeRejected:
		if m.Version == 0 {
			return fmt.Errorf("%s.version 0: versions start at 1", m.Type)
		}
		return text("error", m.Error)
	case TypeStatus:
		if m.Status == nil {
			return errors.New("status message: no status field")
		}
		if len(m.Status.Gates) > maxGates || len(m.Status.App) > maxAppCounters {
			return fmt.Errorf("status message: %d gates, %d app counters (at most %d, %d)", len(m.Status.Gates), len(m.Status.App), maxGates, maxAppCounters)
		}
		for name := range m.Status.Gates {
			if err := ValidName(name); err != nil {
				return fmt.Errorf("status message: %w", err)
			}
		}
		for name := range m.Status.App {
			if err := ValidCounterName(name); err != nil {
				return fmt.Errorf("status message: %w", err)
			}
		}
	case TypeDrain:
		if m.TimeoutMS < 0 {
			return fmt.Errorf("drain message: timeout_ms %d is negative", m.TimeoutMS)
		}
		if m.StopMS < 0 {
			return fmt.Errorf("drain message: stop_ms %d is negative", m.StopMS)
		}
	case TypeReady, TypeDrained:
	case TypeError:
		return text("error", m.Error)
	case "":
		return errors.New("control message has no type")
	default:
		return fmt.Errorf("%w %.40q", ErrUnknownType, m.Type)
	}
	return nil
}

func validGates(typ string, gates []GateInfo) error {
	if len(gates) > maxGates {
		return fmt.Errorf("%s.gates: %d gates (at most %d)", typ, len(gates), maxGates)
	}
	seen := map[string]bool{}
	for i, g := range gates {
		at := fmt.Sprintf("%s.gates[%d]", typ, i)
		if err := ValidName(g.Name); err != nil {
			return fmt.Errorf("%s.name: %w", at, err)
		}
		if seen[g.Name] {
			return fmt.Errorf("%s.name %q: gate listed twice", at, g.Name)
		}
		seen[g.Name] = true
		switch {
		case g.Dir != In && g.Dir != Out:
			return fmt.Errorf("%s.dir %.40q: want \"in\" or \"out\"", at, g.Dir)
		case g.Pattern == "":
			return fmt.Errorf("%s.pattern: missing (gate %q)", at, g.Name)
		case !g.Pattern.ValidFor(g.Dir):
			return fmt.Errorf("%s.pattern %.40q: not valid for an %s-gate (%s)", at, g.Pattern, g.Dir, patternsFor(g.Dir))
		case g.Bound != "":
			if err := validBound(g.Bound); err != nil {
				return fmt.Errorf("%s.bound: %w", at, err)
			}
		}
	}
	return nil
}

// validBound checks the shape of an in-gate's reported listening address: an
// actual address, so a host (an IP, a name, or a wildcard) and a port in
// 1..65535.
func validBound(s string) error {
	ep, err := ParseBindEndpoint(s)
	switch {
	case err != nil:
		return err
	case ep.Host == "":
		return fmt.Errorf("endpoint %q: want tcp://host:port with a host (0.0.0.0, [::] or * for every interface)", s)
	case ep.Port == 0:
		return fmt.Errorf("endpoint %q: want the port actually bound, 1..65535", s)
	}
	return nil
}

func patternsFor(d Direction) string {
	if d == In {
		return "pull, sub, rep or pair"
	}
	return "push, pub, req or pair"
}

// ValidCounterName reports why name cannot be an application counter name:
// 1..128 characters of a-z, A-Z, 0-9, '_', '-', '.'.
func ValidCounterName(name string) error {
	if name == "" || len(name) > maxCounterName {
		return fmt.Errorf("counter name %.40q: want 1..%d characters", name, maxCounterName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("counter name %q has %q at offset %d (use a-z, A-Z, 0-9, '_', '-', '.')", name, c, i)
		}
	}
	return nil
}

// ErrLineTooLong is returned by a Reader for a line longer than MaxLineBytes.
var ErrLineTooLong = fmt.Errorf("control message longer than %d bytes", MaxLineBytes)

// Reader reads protocol lines from a stream, never holding more than
// MaxLineBytes of one line.
type Reader struct {
	br  *bufio.Reader
	buf []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next decoded message, skipping empty lines. An error
// wrapping ErrUnknownType leaves the stream usable; any other error does not.
func (r *Reader) Next() (Message, error) {
	for {
		line, err := r.line()
		if err != nil {
			return Message{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return Decode(line)
	}
}

func (r *Reader) line() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(chunk) > MaxLineBytes {
			return nil, ErrLineTooLong
		}
		switch {
		case err == nil:
			if len(r.buf) == 0 {
				return chunk, nil
			}
			return append(r.buf, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			r.buf = append(r.buf, chunk...)
			if len(r.buf) >= MaxLineBytes { // no room left for the newline
				return nil, ErrLineTooLong
			}
		case errors.Is(err, io.EOF) && len(r.buf)+len(chunk) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// durationMS converts milliseconds from the wire, saturating absurd values.
func durationMS(ms int64) time.Duration {
	const maxMS = int64(1<<63-1) / int64(time.Millisecond)
	if ms > maxMS {
		ms = maxMS
	}
	return time.Duration(ms) * time.Millisecond
}
