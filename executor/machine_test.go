package executor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/executor/internal/supervise"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/scripttest"
)

// TestMachineScripts runs the scripted scenarios in testdata/machine: each
// block is one input to the machine and the effects it must return, plus the
// next deadline. See scriptHarness.do for the commands.
func TestMachineScripts(t *testing.T) {
	scripttest.Walk(t, "testdata/machine", func(t *testing.T, path string) {
		h := newScriptHarness()
		scripttest.RunFile(t, path, func(t *testing.T, d *scripttest.Cmd) string {
			if d.Input != "" {
				t.Fatalf("%s: %s takes no input lines", d.Pos, d.Name)
			}
			got, err := h.do(d)
			if err != nil {
				t.Fatalf("%s: %s: %v", d.Pos, d.Name, err)
			}
			return strings.Join(got, "\n")
		})
	})
}

type scriptHarness struct {
	m     *machine
	now   time.Time
	t0    time.Time
	uuids int
	svc   control.State
	beats int
}

func newScriptHarness() *scriptHarness {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return &scriptHarness{now: t0, t0: t0}
}

func (h *scriptHarness) config(args []scripttest.Arg) (machineConfig, error) {
	c := machineConfig{
		FrameworkID: "fw", ExecutorID: "ex",
		Checkpoint: true, RecoveryTimeout: 15 * time.Minute, BackoffMax: 2 * time.Second,
		ShutdownGrace: 5 * time.Second, StatusInterval: 3 * time.Second, AckTimeout: 15 * time.Second,
		NewUUID: func() []byte {
			h.uuids++
			b := make([]byte, 16)
			binary.BigEndian.PutUint64(b[8:], uint64(h.uuids))
			return b
		},
		Rand: func() float64 { return 0.5 },
	}
	for _, a := range args {
		k, v := a.Key, a.Val
		var err error
		switch k {
		case "checkpoint":
			c.Checkpoint, err = strconv.ParseBool(v)
		case "recovery":
			c.RecoveryTimeout, err = time.ParseDuration(v)
		case "backoff":
			c.BackoffMax, err = time.ParseDuration(v)
		case "shutdown":
			c.ShutdownGrace, err = time.ParseDuration(v)
		case "status":
			c.StatusInterval, err = time.ParseDuration(v)
		case "ack":
			c.AckTimeout, err = time.ParseDuration(v)
		default:
			err = fmt.Errorf("unknown init argument %q", a.Val)
			if k != "" {
				err = fmt.Errorf("unknown init argument %s=", k)
			}
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func (h *scriptHarness) agent(ev *executor.Event) input {
	return inAgent{Gen: h.m.gen, Event: ev}
}

func (h *scriptHarness) do(d *scripttest.Cmd) ([]string, error) {
	cmd, words := d.Name, d.Positional()
	if cmd == "init" {
		c, err := h.config(d.Args)
		if err != nil {
			return nil, err
		}
		h.m = newMachine(c, h.now)
		h.svc = control.State{}
		return h.render(h.m.Step(h.now, inTick{})), nil
	}
	if h.m == nil {
		return nil, errors.New("init first")
	}
	var in input
	switch cmd {
	case "advance":
		dur, err := time.ParseDuration(words[0])
		if err != nil {
			return nil, err
		}
		h.now = h.now.Add(dur)
		in = inTick{}
	case "tick":
		in = inTick{}
	case "next":
		// to the machine's next deadline
		next := h.m.NextDeadline()
		if next.IsZero() {
			return nil, errors.New("no deadline")
		}
		h.now = next
		in = inTick{}
	case "subscribed":
		s := &executor.Event_Subscribed{}
		if d.Value("killing") == "true" {
			tk := mesos.FrameworkInfo_Capability_TASK_KILLING_STATE
			s.FrameworkInfo.Capabilities = []mesos.FrameworkInfo_Capability{{Type: tk}}
		}
		in = h.agent(&executor.Event{Type: executor.Event_SUBSCRIBED, Subscribed: s})
	case "stale-event":
		in = inAgent{Gen: h.m.gen - 1, Event: &executor.Event{Type: executor.Event_SHUTDOWN}}
	case "disconnected":
		in = inDisconnected{Gen: h.m.gen, Err: errors.New(d.Value("err"))}
	case "launch":
		ti := mesos.TaskInfo{TaskID: mesos.TaskID{Value: words[0]}, Name: words[0]}
		if len(words) > 1 {
			ti.Data = []byte(words[1])
		}
		if g, ok := d.Lookup("kill_policy"); ok {
			dur, err := time.ParseDuration(g)
			if err != nil {
				return nil, err
			}
			ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(dur)}}
		}
		in = h.agent(&executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: ti}})
	case "launch-group":
		in = h.agent(&executor.Event{Type: executor.Event_LAUNCH_GROUP, LaunchGroup: &executor.Event_LaunchGroup{
			TaskGroup: mesos.TaskGroupInfo{Tasks: []mesos.TaskInfo{{TaskID: mesos.TaskID{Value: words[0]}}}}}})
	case "kill":
		k := &executor.Event_Kill{TaskID: mesos.TaskID{Value: words[0]}}
		if g, ok := d.Lookup("grace"); ok {
			dur, err := time.ParseDuration(g)
			if err != nil {
				return nil, err
			}
			k.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(dur)}}
		}
		in = h.agent(&executor.Event{Type: executor.Event_KILL, Kill: k})
	case "ack":
		n, err := strconv.Atoi(words[0])
		if err != nil {
			return nil, err
		}
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b[8:], uint64(n))
		id := d.Value("task")
		if id == "" && h.m.task != nil {
			id = h.m.task.id
		}
		in = h.agent(&executor.Event{Type: executor.Event_ACKNOWLEDGED, Acknowledged: &executor.Event_Acknowledged{TaskID: mesos.TaskID{Value: id}, UUID: b}})
	case "message":
		in = h.agent(&executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: []byte(words[0])}})
	case "shutdown":
		in = h.agent(&executor.Event{Type: executor.Event_SHUTDOWN})
	case "heartbeat":
		in = h.agent(&executor.Event{Type: executor.Event_HEARTBEAT})
	case "error":
		in = h.agent(&executor.Event{Type: executor.Event_ERROR, Error: &executor.Event_Error{Message: d.Value("msg")}})
	case "terminate":
		in = inTerminate{Signal: "terminated"}
	case "started":
		pid, _ := strconv.Atoi(d.Value("pid"))
		in = inStarted{PID: pid}
	case "start-failed":
		in = inStartFailed{Err: errors.New(d.Value("err"))}
	case "service":
		if err := h.serviceState(d); err != nil {
			return nil, err
		}
		in = inService{State: h.svc}
	case "exited":
		var st supervise.Status
		if s, ok := d.Lookup("signal"); ok {
			n, _ := strconv.Atoi(s)
			st.Signal = syscall.Signal(n)
		} else {
			st.Code, _ = strconv.Atoi(d.Value("code"))
		}
		in = inExited{Status: st, StderrTail: d.Value("tail")}
	case "call-failed":
		f := inCallFailed{Err: errors.New(d.Value("err")), Permanent: d.Value("permanent") == "true"}
		if u, ok := d.Lookup("update"); ok {
			n, _ := strconv.Atoi(u)
			f.UUID = make([]byte, 16)
			binary.BigEndian.PutUint64(f.UUID[8:], uint64(n))
		}
		in = f
	default:
		return nil, fmt.Errorf("unknown command %q", cmd)
	}
	return h.render(h.m.Step(h.now, in)), nil
}

// serviceState changes the simulated control-socket state: connect,
// disconnect, ready, beat (a heartbeat), applied=N, rejected=N reject=TEXT,
// drained, gates=name@addr,… counter=name:value, stop_dropped=gate:n (a
// heartbeat: what closing out-gate gate dropped), violation=TEXT (a false
// claim the control server refused).
func (h *scriptHarness) serviceState(d *scripttest.Cmd) error {
	s := &h.svc
	for _, w := range d.Positional() {
		switch w {
		case "connect":
			s.Connected = true
			s.Connections++
		case "disconnect":
			s.Connected = false
		case "ready":
			s.Ready = true
		case "drained":
			s.Drained = true
		case "beat":
			h.beats++
			st := &control.Status{Seq: uint64(h.beats), Applied: s.Applied, Gates: map[string]control.GateCounters{}}
			if s.Status != nil {
				st.Gates, st.App = s.Status.Gates, s.Status.App
			}
			s.Status = st
		default:
			return fmt.Errorf("unknown service word %q", w)
		}
	}
	for _, a := range d.Args {
		k, v := a.Key, a.Val
		switch k {
		case "":
			// a word, done above
		case "applied":
			n, _ := strconv.ParseUint(v, 10, 64)
			s.Applied = n
		case "rejected":
			n, _ := strconv.ParseUint(v, 10, 64)
			s.Rejected = n
		case "reject":
			s.RejectErr = v
		case "violation":
			s.Violation = v
			s.ProtoErrors++
		case "gates":
			s.Gates = nil
			for _, g := range strings.Split(v, ",") {
				name, addr, _ := strings.Cut(g, "@")
				s.Gates = append(s.Gates, control.GateInfo{Name: name, Bound: addr})
			}
		case "stop_dropped":
			// An out-gate's last counters: what closing it dropped.
			name, val, _ := strings.Cut(v, ":")
			n, _ := strconv.ParseUint(val, 10, 64)
			h.beats++
			st := &control.Status{Seq: uint64(h.beats), Applied: s.Applied, Gates: map[string]control.GateCounters{
				name: {Pattern: control.Push, Dir: control.Out, Sent: 10, Dropped: n, StopDropped: n}}}
			s.Status = st
		case "counter":
			name, val, _ := strings.Cut(v, ":")
			n, _ := strconv.ParseInt(val, 10, 64)
			h.beats++
			st := &control.Status{Seq: uint64(h.beats), Gates: map[string]control.GateCounters{"in": {Pattern: control.Pull, Dir: control.In, Received: uint64(n)}}, App: map[string]int64{name: n}}
			s.Status = st
		default:
			return fmt.Errorf("unknown service key %q", k)
		}
	}
	return nil
}

func uuidNum(b []byte) string {
	if len(b) != 16 {
		return fmt.Sprintf("%x", b)
	}
	return "u" + strconv.FormatUint(binary.BigEndian.Uint64(b[8:]), 10)
}

func renderStatus(st mesos.TaskStatus) string {
	s := fmt.Sprintf("%s %s %s %q", uuidNum(st.UUID), st.TaskID.Value, st.GetState(), st.GetMessage())
	if st.Reason != nil {
		s += " reason=" + st.Reason.String()
	}
	if st.Healthy != nil {
		s += fmt.Sprintf(" healthy=%v", *st.Healthy)
	}
	if len(st.Data) > 0 {
		// The final counters (a status message): the gates' in short.
		msg, err := contract.Decode(st.Data)
		if err != nil || msg.Type != contract.TypeStatus || msg.TaskID != st.TaskID.Value {
			return s + fmt.Sprintf(" data=%q (not a status of the task: %v)", st.Data, err)
		}
		var gates []string
		for _, name := range slices.Sorted(maps.Keys(msg.Gates)) {
			g := msg.Gates[name]
			gates = append(gates, fmt.Sprintf("%s sent=%d received=%d dropped=%d stop_dropped=%d", name, g.Sent, g.Received, g.Dropped, g.StopDropped))
		}
		s += " final=[" + strings.Join(gates, "; ") + "]"
	}
	return s
}

func (h *scriptHarness) render(effects []effect) []string {
	var out []string
	for _, e := range effects {
		switch e := e.(type) {
		case doSubscribe:
			var tasks, ups []string
			for _, t := range e.Call.Subscribe.UnacknowledgedTasks {
				tasks = append(tasks, t.TaskID.Value)
			}
			for _, u := range e.Call.Subscribe.UnacknowledgedUpdates {
				ups = append(ups, uuidNum(u.Status.UUID)+":"+u.Status.GetState().String())
			}
			out = append(out, fmt.Sprintf("subscribe gen=%d tasks=[%s] updates=[%s]", e.Gen, strings.Join(tasks, " "), strings.Join(ups, " ")))
		case doDisconnect:
			out = append(out, fmt.Sprintf("disconnect below gen=%d: %s", e.Gen, e.Reason))
		case doCall:
			switch e.Call.Type {
			case executor.Call_UPDATE:
				out = append(out, "update "+renderStatus(e.Call.Update.Status))
			case executor.Call_MESSAGE:
				out = append(out, "message "+string(e.Call.Message.Data))
			default:
				out = append(out, "call "+e.Call.Type.String())
			}
		case doLaunch:
			out = append(out, fmt.Sprintf("launch %s service=%s heartbeat=%s", e.TaskID, e.Data.Service, e.HeartbeatInterval))
		case doPush:
			b, _ := json.Marshal(e.Snapshot)
			out = append(out, "push "+string(b))
		case doDrain:
			out = append(out, fmt.Sprintf("drain timeout=%s stop=%s", e.Timeout, e.Stop))
		case doSignal:
			out = append(out, fmt.Sprintf("signal %s", sigName(e.Signal)))
		case doLog:
			var b strings.Builder
			fmt.Fprintf(&b, "log %s %q", e.Level, e.Msg)
			for i := 0; i+1 < len(e.Attrs); i += 2 {
				fmt.Fprintf(&b, " %v=%q", e.Attrs[i], fmt.Sprint(e.Attrs[i+1]))
			}
			out = append(out, b.String())
		case doExit:
			out = append(out, fmt.Sprintf("exit %d %q", e.Code, e.Reason))
		default:
			out = append(out, fmt.Sprintf("?? %T", e))
		}
	}
	if next := h.m.NextDeadline(); !next.IsZero() {
		out = append(out, fmt.Sprintf("next +%s (at %s)", next.Sub(h.now), next.Sub(h.t0)))
	}
	return out
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return s.String()
}
