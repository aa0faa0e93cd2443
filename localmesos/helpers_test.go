package localmesos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/internal/recordio"
	"github.com/tiltai/tiltai/localmesos/internal/protojson"
)

// rawSched is a scheduler written against the HTTP API directly, so tests
// see exactly what goes over the wire.
type rawSched struct {
	t        testing.TB
	url      string
	streamID string
	fwID     string
	events   chan rawEvent
	body     io.ReadCloser
}

type rawEvent struct {
	raw []byte
	ev  *scheduler.Event
	err error
}

func testConfig(t *testing.T) Config {
	return Config{
		HeartbeatInterval: 15 * time.Second, AllocationInterval: 50 * time.Millisecond,
		StatusUpdateRetry: 500 * time.Millisecond, WorkDir: t.TempDir(),
		ExecutorShutdownGracePeriod: 2 * time.Second,
	}
}

func startCluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func post(t testing.TB, url string, hdr map[string]string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func subscribeRaw(t testing.TB, c *Cluster, body string) *rawSched {
	t.Helper()
	s := openStream(t, c, body)
	e := s.next(scheduler.Event_SUBSCRIBED)
	s.fwID = e.ev.Subscribed.FrameworkID.Value
	return s
}

// openStream posts a SUBSCRIBE and reads its stream, whatever comes first.
func openStream(t testing.TB, c *Cluster, body string) *rawSched {
	t.Helper()
	resp := post(t, c.SchedulerURL(), map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, []byte(body))
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("SUBSCRIBE: %s %s", resp.Status, b)
	}
	s := &rawSched{t: t, url: c.SchedulerURL(), streamID: resp.Header.Get("Mesos-Stream-Id"), events: make(chan rawEvent, 1000), body: resp.Body}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		rd := recordio.NewReader(resp.Body, 16<<20)
		for {
			rec, err := rd.Read()
			if err != nil {
				s.events <- rawEvent{err: err}
				close(s.events)
				return
			}
			ev := new(scheduler.Event)
			raw := append([]byte(nil), rec...)
			if err := protojson.Unmarshal(raw, ev); err != nil {
				s.events <- rawEvent{raw: raw, err: err}
				continue
			}
			s.events <- rawEvent{raw: raw, ev: ev}
		}
	}()
	return s
}

// next returns the next event of type typ, skipping others (HEARTBEAT and
// OFFERS unless asked for).
func (s *rawSched) next(typ scheduler.Event_Type) rawEvent {
	s.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatalf("stream ended waiting for %s", typ)
			}
			if e.err != nil {
				s.t.Fatalf("stream error waiting for %s: %v", typ, e.err)
			}
			if e.ev.Type == typ {
				return e
			}
		case <-deadline:
			s.t.Fatalf("no %s event within 20s", typ)
		}
	}
}

// call posts a JSON call with the stream id and returns status and body.
func (s *rawSched) call(body string) (int, string) {
	s.t.Helper()
	resp := post(s.t, s.url, map[string]string{"Content-Type": "application/json", "Accept": "application/json", "Mesos-Stream-Id": s.streamID}, []byte(body))
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *rawSched) mustCall(body string) {
	s.t.Helper()
	if code, text := s.call(body); code != 202 {
		s.t.Fatalf("call %s: %d %s", body, code, text)
	}
}

func (s *rawSched) ack(e rawEvent) {
	st := e.ev.Update.Status
	if st.UUID == nil {
		return
	}
	s.mustCall(fmt.Sprintf(`{"type":"ACKNOWLEDGE","framework_id":{"value":%q},"acknowledge":{"agent_id":{"value":%q},"task_id":{"value":%q},"uuid":%s}}`,
		s.fwID, st.AgentID.Value, st.TaskID.Value, mustJSON(st.UUID)))
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
