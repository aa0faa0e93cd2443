package wire

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/internal/recordio"
)

func TestNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name, ct, accept string
		wantIn, wantOut  int // status, 0 = ok
		out              Codec
	}{
		{name: "json", ct: "application/json", accept: "application/json", out: JSON},
		{name: "protobuf", ct: "application/x-protobuf", accept: "application/x-protobuf", out: Protobuf},
		{name: "no accept", ct: "application/json", out: JSON},
		{name: "wildcard", ct: "application/json; charset=utf-8", accept: "*/*", out: JSON},
		{name: "no content type", wantIn: 400},
		{name: "text", ct: "text/plain", wantIn: 415},
		{name: "html accept", ct: "application/json", accept: "text/html", wantOut: 406},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			_, err := RequestCodec(r)
			if status(err) != tc.wantIn {
				t.Fatalf("RequestCodec: %v, want status %d", err, tc.wantIn)
			}
			if err != nil {
				return
			}
			c, err := ResponseCodec(r)
			if status(err) != tc.wantOut {
				t.Fatalf("ResponseCodec: %v, want status %d", err, tc.wantOut)
			}
			if err == nil && c != tc.out {
				t.Fatalf("codec %v, want %v", c, tc.out)
			}
		})
	}
}

func status(err error) int {
	if err == nil {
		return 0
	}
	return err.(*Error).Status
}

// TestStreamFraming: events are framed, heartbeats come on the interval,
// a black hole swallows records, Close ends the stream after what is
// queued.
func TestStreamFraming(t *testing.T) {
	s := NewStream(JSON, "id")
	s.Send(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{FrameworkID: &mesos.FrameworkID{Value: "f"}}})
	s.Close()
	rec := httptest.NewRecorder()
	s.Serve(context.Background(), rec, ServeOptions{Heartbeat: &scheduler.Event{Type: scheduler.Event_HEARTBEAT}, HeartbeatInterval: time.Hour})
	rd := recordio.NewReader(bytes.NewReader(rec.Body.Bytes()), 1<<20)
	got, err := rd.Read()
	if err != nil || string(got) != `{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"f"}}}` {
		t.Fatalf("record %q, %v", got, err)
	}
	if !s.Gone() || s.Send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT}) {
		t.Fatal("a closed stream accepted an event")
	}

	s2 := NewStream(Protobuf, "id2")
	s2.Send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT})
	s2.Close()
	rec2 := httptest.NewRecorder()
	s2.Serve(context.Background(), rec2, ServeOptions{BlackHole: func() bool { return true }})
	if rec2.Body.Len() != 0 || s2.Dropped.Load() != 1 {
		t.Fatalf("black hole wrote %q, dropped %d", rec2.Body.String(), s2.Dropped.Load())
	}
}

// FuzzDecodeCall: any body, in either codec, for either API decodes or
// fails with a 400; nothing panics.
func FuzzDecodeCall(f *testing.F) {
	sub, _ := (&scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: &mesos.FrameworkInfo{User: "u", Name: "n"}}}).Marshal()
	f.Add(sub, false)
	f.Add([]byte(`{"type":"UPDATE","executor_id":{"value":"e"},"framework_id":{"value":"f"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"AAAAAAAAAAAAAAAAAAAAAA=="}}}`), true)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, false)
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		c := Protobuf
		if json {
			c = JSON
		}
		for _, msg := range []Message{new(scheduler.Call), new(executor.Call)} {
			if err := Decode(c, body, msg); err != nil && status(err) != http.StatusBadRequest {
				t.Fatalf("decode error %v is not a 400", err)
			}
		}
	})
}

func TestReadBodyLimit(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", MaxBody+1)))
	if _, err := ReadBody(r); status(err) != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v", err)
	}
}
