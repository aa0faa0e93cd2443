package conformance

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// wait is how long an expected event may take.
const wait = 30 * time.Second

// answer is an HTTP answer, read in full.
type answer struct {
	code int
	hdr  http.Header
	body string
}

// do sends one request to the master.
func do(t *testing.T, method, path string, hdr map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, master+path, strings.NewReader(body))
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, hdr: resp.Header, body: string(b)}
}

var jsonHdr = map[string]string{"Content-Type": "application/json", "Accept": "application/json"}

func (a answer) expect(t *testing.T, code int, text string) {
	t.Helper()
	if a.code != code || (text != "" && a.body != text) {
		t.Errorf("answer %d %q, Mesos answers %d %q", a.code, a.body, code, text)
	}
}

// event is one record of a scheduler stream.
type event struct {
	ev  scheduler.Event
	raw []byte
	err error // io.EOF at the end of the stream
}

// sched is a scheduler over raw HTTP and JSON.
type sched struct {
	t        *testing.T
	fwID     string
	streamID string
	events   chan event
	cancel   context.CancelFunc
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// frameworkInfo is a FrameworkInfo in JSON for a framework named after the
// test; extra holds more members ("roles":[...], ...).
func frameworkInfo(t *testing.T, extra string) string {
	name := "conformance-" + t.Name() + "-" + randomID()
	u := "root"
	if cur, err := user.Current(); err == nil {
		u = cur.Username
	}
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"user":%q,"name":%q%s}`, u, name, extra)
}

const multiRole = `"roles":["*"],"capabilities":[{"type":"MULTI_ROLE"}]`

// open posts a SUBSCRIBE and reads its stream in the background.
func open(t *testing.T, info, fwID string) *sched {
	t.Helper()
	call := fmt.Sprintf(`{"type":"SUBSCRIBE","subscribe":{"framework_info":%s}}`, info)
	if fwID != "" {
		call = fmt.Sprintf(`{"type":"SUBSCRIBE","framework_id":{"value":%q},"subscribe":{"framework_info":%s}}`, fwID, info)
	}
	return openCall(t, call)
}

// openCall posts a SUBSCRIBE call as given.
func openCall(t *testing.T, call string) *sched {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, master+"/api/v1/scheduler", strings.NewReader(call))
	for k, v := range jsonHdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("SUBSCRIBE: %d %s", resp.StatusCode, b)
	}
	s := &sched{t: t, streamID: resp.Header.Get("Mesos-Stream-Id"), events: make(chan event, 1000), cancel: cancel}
	go s.read(resp.Body)
	t.Cleanup(cancel)
	return s
}

// read splits the RecordIO stream: a decimal length, LF, the record.
func (s *sched) read(body io.ReadCloser) {
	defer close(s.events)
	defer body.Close()
	br := bufio.NewReader(body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.events <- event{err: io.EOF}
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || n < 0 || n > 64<<20 {
			s.events <- event{err: fmt.Errorf("bad RecordIO length %q", line)}
			return
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(br, rec); err != nil {
			s.events <- event{err: io.EOF}
			return
		}
		var e event
		e.raw = rec
		e.err = json.Unmarshal(rec, &e.ev)
		s.events <- e
	}
}

// subscribe opens a stream and waits for SUBSCRIBED; the framework is torn
// down when the test ends.
func subscribe(t *testing.T, info string) *sched {
	t.Helper()
	s := open(t, info, "")
	s.subscribed()
	return s
}

// subscribed waits for SUBSCRIBED; the framework is torn down when the
// test ends.
func (s *sched) subscribed() {
	s.t.Helper()
	s.fwID = s.next(scheduler.Event_SUBSCRIBED).Subscribed.FrameworkID.Value
	s.t.Cleanup(s.teardown)
}

// withID adds the framework's id to a FrameworkInfo in JSON.
func withID(info, fwID string) string {
	return strings.Replace(info, "{", fmt.Sprintf(`{"id":{"value":%q},`, fwID), 1)
}

// next returns the next event of type typ, skipping others (offers of
// other types are declined so they do not pile up).
func (s *sched) next(typ scheduler.Event_Type) *scheduler.Event {
	s.t.Helper()
	if e := s.within(typ, wait); e != nil {
		return e
	}
	s.t.Fatalf("no %s within %s", typ, wait)
	return nil
}

// within returns the next event of type typ that comes within d, or nil.
func (s *sched) within(typ scheduler.Event_Type, d time.Duration) *scheduler.Event {
	s.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-s.events:
			if !ok || e.err == io.EOF {
				s.t.Fatalf("stream ended while waiting for %s", typ)
			}
			if e.err != nil {
				s.t.Fatalf("bad event %s: %v", e.raw, e.err)
			}
			if e.ev.Type == typ {
				return &e.ev
			}
			if e.ev.Type == scheduler.Event_UPDATE {
				s.ack(e.ev.Update.Status)
			}
		case <-timer.C:
			return nil
		}
	}
}

// closed waits for the end of the stream and returns the events before it.
func (s *sched) closed() []scheduler.Event {
	s.t.Helper()
	var got []scheduler.Event
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-s.events:
			if !ok || e.err == io.EOF {
				return got
			}
			got = append(got, e.ev)
		case <-timer.C:
			s.t.Fatalf("stream still open after %s; events: %v", wait, got)
		}
	}
}

// call sends a call with the framework's stream id.
func (s *sched) call(body string) answer {
	s.t.Helper()
	return s.callWith(s.streamID, body)
}

func (s *sched) callWith(streamID, body string) answer {
	s.t.Helper()
	hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	if streamID != "" {
		hdr["Mesos-Stream-Id"] = streamID
	}
	return do(s.t, http.MethodPost, "/api/v1/scheduler", hdr, body)
}

func (s *sched) mustCall(body string) {
	s.t.Helper()
	if a := s.call(body); a.code != http.StatusAccepted {
		s.t.Fatalf("%s: %d %q", body, a.code, a.body)
	}
}

// ack acknowledges an update that carries a uuid (the master's own
// updates carry none and must not be acknowledged).
func (s *sched) ack(st mesos.TaskStatus) {
	s.t.Helper()
	if st.UUID == nil || st.AgentID == nil {
		return
	}
	s.mustCall(fmt.Sprintf(`{"type":"ACKNOWLEDGE",%s,"acknowledge":{"agent_id":{"value":%q},"task_id":{"value":%q},"uuid":%q}}`,
		s.fw(), st.AgentID.Value, st.TaskID.Value, base64.StdEncoding.EncodeToString(st.UUID)))
}

func (s *sched) teardown() {
	if s.fwID == "" {
		return
	}
	_ = s.call(fmt.Sprintf(`{"type":"TEARDOWN","framework_id":{"value":%q}}`, s.fwID))
	s.cancel()
}

// fw is the "framework_id" member of a call.
func (s *sched) fw() string { return fmt.Sprintf(`"framework_id":{"value":%q}`, s.fwID) }

// launch ACCEPTs an offer with one command task; filters is "" or a
// "filters" member.
func (s *sched) launch(offerID, agentID, taskID, cmd, resources, filters string) {
	s.t.Helper()
	if filters != "" {
		filters = "," + filters
	}
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT",%s,"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":%q,"task_id":{"value":%q},"agent_id":{"value":%q},"command":{"value":%q},"resources":%s}]}}]%s}}`,
		s.fw(), offerID, taskID, taskID, agentID, cmd, resources, filters))
}

// small is a task's resources: 0.1 cpus, 32 MB.
const small = `[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]`

// decline declines offers with refuse_seconds.
func (s *sched) decline(refuse float64, ids ...string) {
	s.t.Helper()
	var list []string
	for _, id := range ids {
		list = append(list, fmt.Sprintf(`{"value":%q}`, id))
	}
	s.mustCall(fmt.Sprintf(`{"type":"DECLINE",%s,"decline":{"offer_ids":[%s],"filters":{"refuse_seconds":%v}}}`, s.fw(), strings.Join(list, ","), refuse))
}
