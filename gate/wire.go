package gate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/go-zeromq/zmq4"
)

// ZMTP 3 framing constants (rfc.zeromq.org/spec:23).
const (
	flagMore     = 0x01
	flagLong     = 0x02
	flagCommand  = 0x04
	flagReserved = 0xF8

	greetingLen = 64
	// maxHandshakeCmd bounds a command frame during the handshake (READY with
	// metadata is tiny; libzmq caps it at a few KiB).
	maxHandshakeCmd = 64 << 10
	// maxFramesPerMsg bounds the parts of one plain multipart message.
	maxFramesPerMsg = 1024
)

// extProperty is the ZMTP metadata property by which a gate tells a peer that
// it speaks the Tiltai extension: batched data frames and acknowledgements.
// Plain ZeroMQ peers (zmq4, libzmq) ignore unknown X- properties, and a gate
// that does not see it from its peer speaks plain ZMTP to it.
const (
	extProperty = "X-Tiltai"
	extVersion  = "1"
)

// Kinds of the first byte of an extension frame (one frame per ZMTP message).
const (
	kindData  = 'D' // a batch of messages
	kindAck   = 'A' // uvarint: cumulative messages received on this connection
	kindSub   = 'S' // subscribe to the topic that follows
	kindUnsub = 'U' // unsubscribe
	kindSync  = 'Y' // all current subscriptions have been sent
)

// ErrProtocol marks a connection dropped for breaking the wire protocol.
var ErrProtocol = errors.New("gate wire protocol violation")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// guard validates the bytes zmq4 reads during the handshake before zmq4 sees
// them: zmq4 allocates whatever size a frame header declares, and a hostile
// peer could make it allocate exabytes. It accepts a ZMTP 3.x greeting for the
// NULL mechanism and then only short command frames.
type guard struct {
	pos     int    // bytes of the greeting seen
	hdr     []byte // frame header bytes seen so far
	body    uint64 // body bytes still to pass
	greeted bool
}

func (g *guard) feed(p []byte) error {
	for len(p) > 0 {
		if !g.greeted {
			b := p[0]
			switch {
			case g.pos == 0 && b != 0xFF:
				return protoErr("not a ZMTP greeting (first byte %#x)", b)
			case g.pos == 9 && b != 0x7F:
				return protoErr("not a ZMTP greeting (byte 9 is %#x)", b)
			case g.pos == 10 && b < 3:
				return protoErr("ZMTP version %d (need 3)", b)
			case g.pos >= 12 && g.pos < 32:
				want := byte(0)
				if i := g.pos - 12; i < 4 {
					want = "NULL"[i]
				}
				if b != want {
					return protoErr("security mechanism is not NULL")
				}
			}
			g.pos++
			p = p[1:]
			if g.pos == greetingLen {
				g.greeted = true
			}
			continue
		}
		if g.body > 0 {
			n := min(uint64(len(p)), g.body)
			g.body -= n
			p = p[n:]
			continue
		}
		g.hdr = append(g.hdr, p[0])
		p = p[1:]
		fl := g.hdr[0]
		if fl&flagReserved != 0 || fl&flagCommand == 0 || fl&flagMore != 0 {
			return protoErr("frame flags %#x during handshake (want a command)", fl)
		}
		need := 2
		if fl&flagLong != 0 {
			need = 9
		}
		if len(g.hdr) < need {
			continue
		}
		var size uint64
		if need == 2 {
			size = uint64(g.hdr[1])
		} else {
			size = binary.BigEndian.Uint64(g.hdr[1:])
		}
		if size > maxHandshakeCmd {
			return protoErr("handshake command of %d bytes (at most %d)", size, maxHandshakeCmd)
		}
		g.body, g.hdr = size, g.hdr[:0]
	}
	return nil
}

// wireConn is the net.Conn zmq4 handshakes over: reads pass through a
// buffered reader and the guard; writes go straight to the socket (zmq4 waits
// for the peer's greeting after sending its own, so nothing may sit in a
// buffer). After the handshake the link reads and writes the buffers itself.
type wireConn struct {
	net.Conn
	br      *bufio.Reader
	g       guard
	guarded bool
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	if n > 0 && c.guarded {
		if gerr := c.g.feed(p[:n]); gerr != nil {
			// Report no bytes: io.ReadFull would discard an error that
			// arrives with the last bytes it wanted.
			return 0, gerr
		}
	}
	return n, err
}

// extSecurity is the ZMTP NULL mechanism with two changes: it advertises the
// Tiltai extension in READY metadata, and it parses the peer's READY with a
// bounds-checked parser (zmq4's panics on truncated properties).
type extSecurity struct {
	peerExt bool
}

func (*extSecurity) Type() zmq4.SecurityType { return zmq4.NullSecurity }

func (s *extSecurity) Handshake(conn *zmq4.Conn, server bool) error {
	body := appendProperty(nil, "Socket-Type", conn.Meta["Socket-Type"])
	body = appendProperty(body, "Identity", "")
	body = appendProperty(body, extProperty, extVersion)
	if err := conn.SendCmd(zmq4.CmdReady, body); err != nil {
		return fmt.Errorf("cannot send READY: %w", err)
	}
	cmd, err := conn.RecvCmd()
	if err != nil {
		return fmt.Errorf("cannot read READY: %w", err)
	}
	switch cmd.Name {
	case zmq4.CmdReady:
	case zmq4.CmdError:
		return fmt.Errorf("peer refused the handshake: %q", truncate(string(cmd.Body), 200))
	default:
		return protoErr("expected READY, got command %q", truncate(cmd.Name, 40))
	}
	props, err := parseProperties(cmd.Body)
	if err != nil {
		return err
	}
	for k, v := range props {
		switch strings.ToLower(k) {
		case "socket-type":
			conn.Peer.Meta["Socket-Type"] = v
		case "identity":
			conn.Peer.Meta["Identity"] = v
		case strings.ToLower(extProperty):
			s.peerExt = v == extVersion
		}
	}
	if conn.Peer.Meta["Socket-Type"] == "" {
		return protoErr("peer READY has no Socket-Type")
	}
	return nil
}

func (*extSecurity) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
func (*extSecurity) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

func appendProperty(b []byte, k, v string) []byte {
	b = append(b, byte(len(k)))
	b = append(b, k...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// parseProperties parses ZMTP metadata: repeated name-length(1) name
// value-length(4) value.
func parseProperties(b []byte) (map[string]string, error) {
	props := map[string]string{}
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || len(b) < 1+n+4 {
			return nil, protoErr("truncated READY metadata")
		}
		k := string(b[1 : 1+n])
		vlen := binary.BigEndian.Uint32(b[1+n:])
		b = b[1+n+4:]
		if uint64(vlen) > uint64(len(b)) {
			return nil, protoErr("READY property %q declares %d bytes, %d left", truncate(k, 40), vlen, len(b))
		}
		props[k] = string(b[:vlen])
		b = b[vlen:]
	}
	return props, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// appendFrameHeader appends a ZMTP frame header for a body of size bytes.
func appendFrameHeader(b []byte, flags byte, size int) []byte {
	if size > 255 {
		b = append(b, flags|flagLong)
		return binary.BigEndian.AppendUint64(b, uint64(size))
	}
	return append(b, flags, byte(size))
}

// frame is one ZMTP frame as read.
type frame struct {
	flags byte
	body  []byte
}

// readFrameHeader reads a frame header, refusing reserved flags and bodies
// over max, and returns the flags and the body's size.
func readFrameHeader(br *bufio.Reader, max int) (byte, int, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(br, hdr[:2]); err != nil {
		return 0, 0, err
	}
	fl := hdr[0]
	if fl&flagReserved != 0 {
		return 0, 0, protoErr("frame flags %#x have reserved bits set", fl)
	}
	size := uint64(hdr[1])
	if fl&flagLong != 0 {
		if _, err := io.ReadFull(br, hdr[2:9]); err != nil {
			return 0, 0, err
		}
		size = binary.BigEndian.Uint64(hdr[1:9])
	}
	if size > uint64(max) {
		return 0, 0, protoErr("frame of %d bytes exceeds the %d-byte limit", size, max)
	}
	return fl, int(size), nil
}

// readFrame reads one frame, refusing reserved flags and bodies over max
// before allocating them.
func readFrame(br *bufio.Reader, max int) (frame, error) {
	fl, size, err := readFrameHeader(br, max)
	if err != nil {
		return frame{}, err
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		return frame{}, err
	}
	return frame{flags: fl, body: body}, nil
}

type bufioWriter = bufio.Writer

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Message is one application message: one or more parts (frames). For pub/sub
// the first part is the topic, matched by prefix.
type Message [][]byte

// Clone returns a copy of m that shares no memory with it (one allocation
// for the parts' bytes, one for the slice).
func (m Message) Clone() Message {
	buf := make([]byte, 0, m.Size())
	c := make(Message, len(m))
	for i, p := range m {
		buf = append(buf, p...)
		c[i] = buf[len(buf)-len(p) : len(buf) : len(buf)]
	}
	return c
}

// Size is the total payload bytes of m.
func (m Message) Size() int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

// batchSize returns the encoded size of msgs in a data batch (after the kind
// byte).
func batchSize(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += encodedLen(m)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// writeBatch writes msgs as one data frame: 'D', then per message
// uvarint(parts) and per part uvarint(len) and its bytes (as appendMsg).
func writeBatch(w *bufio.Writer, msgs ...Message) error {
	writeHdr(w, 0, 1+batchSize(msgs))
	w.WriteByte(kindData)
	for _, m := range msgs {
		if err := writeBody(w, m); err != nil {
			return err
		}
	}
	return nil
}

// writeMsg writes one message as a data frame: writeBatch of one, without
// a slice of messages (which would escape with the parts).
func writeMsg(w *bufio.Writer, m Message) error {
	writeHdr(w, 0, 1+encodedLen(m))
	w.WriteByte(kindData)
	return writeBody(w, m)
}

// writeBody writes m's encoding in a data batch (as appendMsg).
func writeBody(w *bufio.Writer, m Message) error {
	writeUvarint(w, uint64(len(m)))
	for _, p := range m {
		writeUvarint(w, uint64(len(p)))
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// writeHdr and writeUvarint write through the writer's own buffer: a stack
// array passed to Write escapes (Write may hand it to the connection), an
// allocation per call.
func writeHdr(w *bufio.Writer, flags byte, size int) {
	w.Write(appendFrameHeader(w.AvailableBuffer(), flags, size))
}

func writeUvarint(w *bufio.Writer, v uint64) {
	w.Write(binary.AppendUvarint(w.AvailableBuffer(), v))
}

// uvarint is binary.Uvarint with the one-byte case (part counts, short
// parts) first.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

// decodeBatch parses the body of a data batch (after the kind byte) into one
// slice of all its messages' parts, which alias b, reusing the room in parts
// and counts. counts holds each message's part count, or is nil when every
// message has one part (the common case, which then costs nothing more).
// maxMsg bounds each message's payload. Everything is checked in a first
// pass, which also sizes parts exactly, before anything is allocated.
func decodeBatch(b []byte, maxMsg int, parts [][]byte, counts []uint16) ([][]byte, []uint16, int, int, error) {
	var nmsg, nparts, bytes int
	for rest := b; len(rest) > 0; {
		k, n := uvarint(rest)
		if n <= 0 || k == 0 || k > maxFramesPerMsg {
			return nil, nil, 0, 0, protoErr("bad part count in batch")
		}
		rest = rest[n:]
		size := 0
		for range k {
			l, n := uvarint(rest)
			if n <= 0 || l > uint64(len(rest)-n) {
				return nil, nil, 0, 0, protoErr("bad part length in batch")
			}
			size += int(l)
			if size > maxMsg {
				return nil, nil, 0, 0, protoErr("message of more than %d bytes in batch", maxMsg)
			}
			rest = rest[n+int(l):]
		}
		nmsg++
		nparts += int(k)
		bytes += size
	}
	parts = slices.Grow(parts[:0], nparts)[:nparts]
	if nparts == nmsg {
		counts = nil
	} else {
		counts = slices.Grow(counts[:0], nmsg)
	}
	i := 0
	for len(b) > 0 {
		k, n := uvarint(b)
		b = b[n:]
		if counts != nil {
			counts = append(counts, uint16(k))
		}
		for range k {
			l, n := uvarint(b)
			end := n + int(l)
			parts[i] = b[n:end:end]
			b = b[end:]
			i++
		}
	}
	return parts, counts, nmsg, bytes, nil
}

// writePlain writes m as a plain ZMTP multipart message.
func writePlain(w *bufio.Writer, m Message) error {
	for i, p := range m {
		var fl byte
		if i < len(m)-1 {
			fl = flagMore
		}
		writeHdr(w, fl, len(p))
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// writeExt writes one extension frame: kind and body.
func writeExt(w *bufio.Writer, kind byte, body []byte) error {
	writeHdr(w, 0, 1+len(body))
	w.WriteByte(kind)
	_, err := w.Write(body)
	return err
}

func writeCmd(w *bufio.Writer, name string, body []byte) error {
	writeHdr(w, flagCommand, 1+len(name)+len(body))
	w.WriteByte(byte(len(name)))
	w.WriteString(name)
	_, err := w.Write(body)
	return err
}
