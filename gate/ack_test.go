package gate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"testing"

	"github.com/tiltai/tiltai/gate/control"
)

// TestAckAfterTrailingFrames: data followed, in the same read, by frames
// that are not data (on a pair, the peer's ack of our own messages) is still
// acknowledged before the reader waits for more — the peer may send nothing
// more until it is.
func TestAckAfterTrailingFrames(t *testing.T) {
	frame := func(body []byte) []byte { return append(appendFrameHeader(nil, 0, len(body)), body...) }
	data := frame(appendMsg([]byte{kindData}, Message{[]byte("x")}))
	for name, tc := range map[string]struct {
		pattern control.Pattern
		after   []byte
	}{
		"pair, then the peer's ack": {control.Pair, frame([]byte{kindAck, 0})},
		"pull, then a ping":         {control.Pull, []byte{flagCommand, 6, 4, 'P', 'I', 'N', 'G', 0}},
	} {
		t.Run(name, func(t *testing.T) {
			g := &Gate{pattern: tc.pattern, opt: Options{}.withDefaults(), log: slog.New(slog.DiscardHandler),
				recvQ: newRecvQueue(1 << 20), progress: newSignal()}
			a, b := net.Pipe()
			defer b.Close()
			var out bytes.Buffer
			l := &link{g: g, nc: a, br: bufio.NewReader(bytes.NewReader(append(data, tc.after...))), bw: bufio.NewWriter(&out),
				ext: true, done: make(chan struct{}), spaceSig: newSignal(), topics: map[string]struct{}{}}
			l.readLoop() // until EOF: by then it waits for more
			var acked []uint64
			for br := bufio.NewReader(&out); ; {
				f, err := readFrame(br, 1<<16)
				if err != nil {
					break
				}
				if f.flags == 0 && len(f.body) > 1 && f.body[0] == kindAck {
					v, _ := binary.Uvarint(f.body[1:])
					acked = append(acked, v)
				}
			}
			if len(acked) != 1 || acked[0] != 1 {
				t.Fatalf("acks written: %v, want [1]", acked)
			}
		})
	}
}
