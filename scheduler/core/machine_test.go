package core

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/scripttest"
	"github.com/tiltai/tiltai/linkspec"
)

// TestScripts runs the scenarios in testdata: each block is one input (or
// batch of inputs) to the machine and what the step decided: records
// stored, calls made (early ones before the write), events, logs, metric
// facts, replies and the next wake-up. See scriptHarness.do for the
// commands; -rewrite accepts new output (internal/scripttest).
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newScriptHarness()
		scripttest.RunFile(t, path, func(t *testing.T, d *scripttest.Cmd) string {
			if d.Input != "" {
				t.Fatalf("%s: input lines before ---- are not used by these scripts", d.Pos)
			}
			got, err := h.do(d.Line)
			if err != nil {
				t.Fatalf("%s: command %q: %v", d.Pos, d.Line, err)
			}
			return strings.Join(got, "\n")
		})
	})
}

// scriptHarness drives a machine as the scheduler's loop does, with a
// store in memory: each step's records are applied before the next, and
// "restart" builds a new machine from them (a crash, or a new leader).
type scriptHarness struct {
	m      *Machine
	cfg    Config
	store  map[string][]byte
	t0     time.Time
	now    time.Time
	nextID uint64
	last   map[scheduler.Call_Type]*scheduler.Call // the last call of each type, for "callfailed"
	// outbox: batches handed out and not yet reported flushed. Unless
	// held, the next step starts with their Flushed (an outbox that sends
	// at once).
	outbox int
	hold   bool
	undo   map[string][]byte // what the last step's records replaced
	quiet  map[string]bool   // output kinds left out
	// taskInfo shows what each ACCEPT launches in full (verbose taskinfo).
	taskInfo bool
}

func newScriptHarness() *scriptHarness {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return &scriptHarness{t0: t0, now: t0, store: map[string][]byte{}, last: map[scheduler.Call_Type]*scheduler.Call{}, quiet: map[string]bool{}}
}

func testConfig() Config {
	return Config{
		ExecutorCPUs: 0.01, ExecutorMem: 16, ExecutorName: "tiltai-exe", ExecutorURL: "http://sched/v1/artifacts/tiltai-exe",
		DrainTimeout: 30 * time.Second, ResendMin: 250 * time.Millisecond, ResendMax: 5 * time.Second,
		AntiEntropy: 30 * time.Second, ReconcileInterval: 10 * time.Minute, UnreachableReconcile: 30 * time.Second,
		StagingReconcile: 60 * time.Second, KillRetry: 30 * time.Second, RestartReset: 10 * time.Second, Refuse: 30 * time.Second,
	}
}

// parseArgs splits "cmd word k=v k2=v2 ..." (values may be quoted).
func parseArgs(s string) (string, []string, map[string]string, error) {
	var toks []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		end := strings.IndexByte(s, ' ')
		if i := strings.Index(s, `="`); i >= 0 && (end < 0 || i < end) {
			rest := s[i+1:]
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return "", nil, nil, err
			}
			uq, _ := strconv.Unquote(q)
			toks = append(toks, s[:i+1]+uq)
			s = rest[len(q):]
			continue
		}
		if end < 0 {
			end = len(s)
		}
		toks = append(toks, s[:end])
		s = s[end:]
	}
	if len(toks) == 0 {
		return "", nil, nil, fmt.Errorf("empty command")
	}
	kv := map[string]string{}
	var words []string
	for _, tok := range toks[1:] {
		if k, v, ok := strings.Cut(tok, "="); ok {
			kv[k] = v
		} else {
			words = append(words, tok)
		}
	}
	return toks[0], words, kv, nil
}

// do runs one command: it feeds the machine its input(s) and renders
// what the step decided.
//
//	init [drain=D resend=D refuse=D restart-reset=D kill-retry=D]
//	submit [if-match=N] [dry-run=1] SPEC    (SPEC: YAML, "; " for a new line)
//	scale SERVICE N                         (a SubmitSpec of the scaled spec)
//	subscribed [fw=ID] [master=URL]
//	disconnected [err=TEXT]
//	offer ID agent=A [host=H] [cpus=N mem=N disk=N ports=LO-HI] [attrs=K:V,K:V] [unavailable=+D[/D]]
//	rescind ID
//	inverse ID agent=A [start=+D]           (an inverse offer: maintenance from now+D)
//	rescind-inverse ID
//	update TASK STATE [uuid=U] [agent=A] [reason=R] [message=TEXT]
//	run TASK...                             (TASK_RUNNING with uuid for each, in one step)
//	ack TASK VERSION | nack TASK VERSION err=TEXT
//	executor-exited TASK [status=N] | agent-failed AGENT
//	callfailed TYPE                         (the last call of that type failed)
//	outbox hold|send                        (hold: batches stay in flight until "flushed")
//	flushed [n=N]                           (the outbox finished N batches)
//	tick [+D]                               (time passes by D, then a step with no input)
//	restart                                 (a new machine from what was stored)
//	forget-last-write                       (the last step's write failed: undo it in the store)
//	quiet KIND... | verbose KIND...         (leave out / show: log, event, metrics, store; taskinfo, off by default)
func (h *scriptHarness) do(line string) ([]string, error) {
	cmd, words, kv, err := parseArgs(line)
	if err != nil {
		return nil, err
	}
	var ins []Input
	switch cmd {
	case "init":
		h.cfg = testConfig()
		for k, v := range kv {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, err
			}
			switch k {
			case "drain":
				h.cfg.DrainTimeout = d
			case "resend":
				h.cfg.ResendMin = d
			case "refuse":
				h.cfg.Refuse = d
			case "restart-reset":
				h.cfg.RestartReset = d
			case "kill-retry":
				h.cfg.KillRetry = d
			default:
				return nil, fmt.Errorf("init: unknown %s", k)
			}
		}
		if h.m, err = New(h.cfg, h.store); err != nil {
			return nil, err
		}
	case "restart":
		if h.m, err = New(h.cfg, h.store); err != nil {
			return nil, err
		}
	case "forget-last-write":
		// The last step's write failed: the store holds what it held
		// before it.
		for k, v := range h.undo {
			if v == nil {
				delete(h.store, k)
			} else {
				h.store[k] = v
			}
		}
		return nil, nil
	case "outbox":
		h.hold = words[0] == "hold"
		return nil, nil
	case "quiet", "verbose":
		for _, w := range words {
			h.quiet[w] = cmd == "quiet"
		}
		if slices.Contains(words, "taskinfo") { // off unless asked for
			h.taskInfo = cmd == "verbose"
		}
		return nil, nil
	case "submit", "scale":
		var spec *linkspec.Spec
		var src []byte
		if cmd == "scale" {
			n, _ := strconv.Atoi(words[1])
			spec = h.m.Spec().Clone()
			spec.Services[words[0]].Instances = n
			src, _ = json.Marshal(spec)
			var probs linkspec.Problems
			if spec, probs = linkspec.Parse("scaled.json", src); probs.Err() != nil {
				return nil, probs.Err()
			}
		} else {
			src = []byte(strings.ReplaceAll(strings.Join(words, " "), "; ", "\n"))
			var probs linkspec.Problems
			if spec, probs = linkspec.Parse("spec.yaml", src); probs.Err() != nil {
				return nil, probs.Err()
			}
		}
		h.nextID++
		in := SubmitSpec{ID: h.nextID, Name: "spec.yaml", Source: src, Spec: spec, IfMatch: -1, DryRun: kv["dry-run"] == "1"}
		if v, ok := kv["if-match"]; ok {
			in.IfMatch, _ = strconv.Atoi(v)
		}
		// image-runs=SERVICE:ARG,ARG… is what the driver read from the
		// service's image (ENTRYPOINT and CMD).
		if v, ok := kv["image-runs"]; ok {
			svc, argv, _ := strings.Cut(v, ":")
			in.Commands = map[string][]string{svc: strings.Split(argv, ",")}
		}
		ins = append(ins, in)
	case "subscribed":
		fw := kv["fw"]
		if fw == "" {
			fw = "fw-1"
		}
		master := kv["master"]
		if master == "" {
			master = "http://master:5050"
		}
		ins = append(ins, Subscribed{FrameworkID: fw, Master: master})
	case "disconnected":
		ins = append(ins, Disconnected{Err: kv["err"]})
	case "offer":
		o := mesos.Offer{ID: mesos.OfferID{Value: words[0]}, AgentID: mesos.AgentID{Value: kv["agent"]}, Hostname: kv["host"]}
		if o.Hostname == "" {
			o.Hostname = kv["agent"] + ".example"
		}
		for _, r := range []string{"cpus", "mem", "disk"} {
			if v, ok := kv[r]; ok {
				f, _ := strconv.ParseFloat(v, 64)
				o.Resources = append(o.Resources, mesos.Resource{Name: r, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: f}})
			}
		}
		if v, ok := kv["ports"]; ok {
			lo, hi, _ := strings.Cut(v, "-")
			b, _ := strconv.ParseUint(lo, 10, 64)
			e, _ := strconv.ParseUint(hi, 10, 64)
			o.Resources = append(o.Resources, mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: b, End: e}}}})
		}
		if v, ok := kv["attrs"]; ok {
			for _, kv := range strings.Split(v, ",") {
				k, v, _ := strings.Cut(kv, ":")
				o.Attributes = append(o.Attributes, mesos.Attribute{Name: k, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}})
			}
		}
		if v, ok := kv["unavailable"]; ok {
			from, dur, _ := strings.Cut(strings.TrimPrefix(v, "+"), "/")
			d, err := time.ParseDuration(from)
			if err != nil {
				return nil, err
			}
			o.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: h.now.Add(d).UnixNano()}}
			if dur != "" {
				dd, err := time.ParseDuration(dur)
				if err != nil {
					return nil, err
				}
				o.Unavailability.Duration = &mesos.DurationInfo{Nanoseconds: int64(dd)}
			}
		}
		ins = append(ins, Offers{Offers: []mesos.Offer{o}})
	case "inverse":
		d := time.Hour
		if v, ok := kv["start"]; ok {
			if d, err = time.ParseDuration(strings.TrimPrefix(v, "+")); err != nil {
				return nil, err
			}
		}
		io := mesos.InverseOffer{OfferID: mesos.OfferID{Value: words[0]}, FrameworkID: mesos.FrameworkID{Value: "fw-1"},
			AgentID: &mesos.AgentID{Value: kv["agent"]}, Unavailability: mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: h.now.Add(d).UnixNano()}}}
		ins = append(ins, InverseOffers{Offers: []mesos.InverseOffer{io}})
	case "rescind-inverse":
		ins = append(ins, RescindInverse{OfferID: words[0]})
	case "rescind":
		ins = append(ins, Rescind{OfferID: words[0]})
	case "update":
		ins = append(ins, Update{Status: h.status(words[0], words[1], kv)})
	case "run":
		for _, id := range words {
			ins = append(ins, Update{Status: h.status(id, "TASK_RUNNING", map[string]string{"uuid": "u-" + id})})
		}
	case "ack", "nack":
		v, _ := strconv.ParseUint(words[1], 10, 64)
		msg := contract.Message{Type: contract.TypeAck, TaskID: words[0], Version: v}
		if cmd == "nack" {
			msg.Type, msg.Error = contract.TypeNack, kv["err"]
		}
		data, err := contract.Encode(msg)
		if err != nil {
			return nil, err
		}
		ins = append(ins, Message{AgentID: h.agentOf(words[0]), ExecutorID: "tiltai-executor." + words[0], Data: data})
	case "executor-exited":
		st, _ := strconv.Atoi(kv["status"])
		ins = append(ins, Failure{AgentID: h.agentOf(words[0]), ExecutorID: "tiltai-executor." + words[0], Status: int32(st)})
	case "agent-failed":
		ins = append(ins, Failure{AgentID: words[0]})
	case "callfailed":
		c := h.last[scheduler.Call_Type(scheduler.Call_Type_value[words[0]])]
		if c == nil {
			return nil, fmt.Errorf("no %s call made yet", words[0])
		}
		ins = append(ins, CallFailed{Call: c})
	case "flushed":
		n := 1
		if v, ok := kv["n"]; ok {
			n, _ = strconv.Atoi(v)
		}
		for range min(n, h.outbox) {
			ins = append(ins, Flushed{At: h.now})
			h.outbox--
		}
	case "tick":
		if len(words) > 0 {
			d, err := time.ParseDuration(strings.TrimPrefix(words[0], "+"))
			if err != nil {
				return nil, err
			}
			h.now = h.now.Add(d)
		}
		ins = append(ins, Tick{})
	default:
		return nil, fmt.Errorf("unknown command %q", cmd)
	}
	if !h.hold && cmd != "init" && cmd != "restart" {
		for ; h.outbox > 0; h.outbox-- {
			ins = append([]Input{Flushed{At: h.now}}, ins...)
		}
	}
	if cmd == "init" || cmd == "restart" {
		h.outbox = 0
	}
	rd := h.m.Step(h.now, ins...)
	h.undo = map[string][]byte{}
	for k := range rd.Records {
		h.undo[k] = h.store[k]
	}
	if len(rd.Early) > 0 {
		h.outbox++
	}
	if len(rd.Late) > 0 {
		h.outbox++
	}
	for k, v := range rd.Records {
		if v == nil {
			delete(h.store, k)
		} else {
			h.store[k] = v
		}
	}
	return h.render(&rd), nil
}

func (h *scriptHarness) agentOf(task string) string {
	if t := h.m.st.tasks[task]; t != nil {
		return t.AgentID
	}
	return "a1"
}

func (h *scriptHarness) status(task, state string, kv map[string]string) mesos.TaskStatus {
	st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: task}, State: mesos.TaskState(mesos.TaskState_value[state]).Enum()}
	agent := kv["agent"]
	if agent == "" {
		agent = h.agentOf(task)
	}
	if agent != "-" {
		st.AgentID = &mesos.AgentID{Value: agent}
	}
	if u := kv["uuid"]; u != "" {
		st.UUID = []byte(u)
	}
	if r := kv["reason"]; r != "" {
		st.Reason = mesos.TaskStatus_Reason(mesos.TaskStatus_Reason_value[r]).Enum()
	}
	if m := kv["message"]; m != "" {
		st.Message = &m
	}
	if d := kv["dropped"]; d != "" {
		// The executor's final counters: gate:n dropped, n of them at stop.
		gate, n, _ := strings.Cut(d, ":")
		v, _ := strconv.ParseUint(n, 10, 64)
		st.Data, _ = contract.Encode(contract.Message{Type: contract.TypeStatus, TaskID: task, State: "done",
			Gates: map[string]control.GateCounters{gate: {Pattern: control.Push, Dir: control.Out, Dropped: v, StopDropped: v}}})
	}
	return st
}

func (h *scriptHarness) at(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Sub(h.t0).String()
}

// render lists what a step decided, in the order the driver carries it
// out, each kind in a stable order.
func (h *scriptHarness) render(rd *Ready) []string {
	var out []string
	if rd.Err != nil {
		out = append(out, "stop "+rd.Err.Error())
	}
	// Calls of one batch are made concurrently: their order is not kept,
	// so they are listed sorted.
	for _, c := range h.calls(rd.Early) {
		out = append(out, "early "+c)
	}
	if !h.quiet["store"] {
		keys := make([]string, 0, len(rd.Records))
		for k := range rd.Records {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, h.record(k, rd.Records[k]))
		}
	}
	for _, c := range h.calls(rd.Late) {
		out = append(out, "call "+c)
	}
	if h.taskInfo {
		for _, c := range append(append([]*scheduler.Call(nil), rd.Early...), rd.Late...) {
			out = append(out, taskInfoLines(c)...)
		}
	}
	if !h.quiet["event"] {
		for _, e := range rd.Events {
			out = append(out, "event "+e.Type+" "+kvs(e.Data))
		}
	}
	if !h.quiet["log"] {
		for _, l := range rd.Logs {
			lv := map[Level]string{LevelDebug: "DEBUG", LevelInfo: "INFO", LevelWarn: "WARN", LevelError: "ERROR"}[l.Level]
			attrs := map[string]any{}
			for i := 0; i+1 < len(l.Attrs); i += 2 {
				attrs[fmt.Sprint(l.Attrs[i])] = l.Attrs[i+1]
			}
			out = append(out, strings.TrimSpace(fmt.Sprintf("log %s %q %s", lv, l.Msg, kvs(attrs))))
		}
	}
	if !h.quiet["metrics"] {
		if m := metricsLine(&rd.Metrics); m != "" {
			out = append(out, "metrics "+m)
		}
	}
	for _, r := range rd.Replies {
		switch {
		case r.Err != nil:
			out = append(out, "reply error "+r.Err.Error())
		case r.Conflict:
			out = append(out, fmt.Sprintf("reply conflict current=%d", r.Version))
		default:
			s := fmt.Sprintf("reply version=%d changed=%v changes=%d", r.Version, r.Changed, len(r.Changes))
			if r.DryRun {
				s += " dry-run"
			}
			out = append(out, s)
		}
	}
	if rd.FrameworkID != "" {
		out = append(out, "framework-id "+rd.FrameworkID)
	}
	for _, c := range append(append([]*scheduler.Call(nil), rd.Early...), rd.Late...) {
		h.last[c.Type] = c
	}
	if rd.Err == nil {
		out = append(out, fmt.Sprintf("wake +%s", rd.Wake.Sub(h.now)))
	}
	return out
}

func kvs(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := m[k]
		switch v := v.(type) {
		case string:
			fmt.Fprintf(&b, "%s=%q", k, v)
		case error:
			fmt.Fprintf(&b, "%s=%q", k, v.Error())
		default:
			j, _ := json.Marshal(v)
			fmt.Fprintf(&b, "%s=%s", k, j)
		}
	}
	return b.String()
}

func metricsLine(m *Metrics) string {
	var parts []string
	add := func(name string, n int) {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", name, n))
		}
	}
	if m.Subscribed != nil {
		parts = append(parts, fmt.Sprintf("subscribed=%v", *m.Subscribed))
	}
	add("subscriptions", m.Subscriptions)
	add("offers", m.Offers)
	add("declined", m.Declined)
	add("launches", m.Launches)
	add("running", m.Running)
	add("kills", m.Kills)
	add("retired", m.Retired)
	add("acked", m.Acked)
	add("no_uuid", m.NoUUID)
	add("unknown_killed", m.UnknownKilled)
	add("link_messages", m.LinkMessages)
	add("resends", m.Resends)
	add("table_versions", m.TableVersions)
	add("bad_messages", m.BadMessages)
	add("nacks", m.Nacks)
	add("divergent", m.Divergent)
	add("reconciliations", m.Reconciliations)
	add("inverse_accepted", m.InverseAccepted)
	for _, lm := range []struct {
		name string
		m    map[string]int
	}{{"failures", m.Failures}, {"calls_repaired", m.CallsRepaired}, {"held", m.Held}, {"unplaced", m.Unplaced}, {"gate_dropped", m.GateDropped}} {
		keys := make([]string, 0, len(lm.m))
		for k := range lm.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s{%s}=%d", lm.name, strings.ReplaceAll(k, "\x00", "/"), lm.m[k]))
		}
	}
	if n := len(m.AckLatency); n > 0 {
		parts = append(parts, fmt.Sprintf("ack_latency=%v", m.AckLatency))
	}
	return strings.Join(parts, " ")
}

// record renders one stored key briefly.
func (h *scriptHarness) record(k string, v []byte) string {
	if v == nil {
		return "delete " + k
	}
	switch {
	case k == keyFrameworkID:
		return "store framework_id " + string(v)
	case k == keySpec:
		var r specRecord
		json.Unmarshal(v, &r)
		return fmt.Sprintf("store spec version=%d", r.Version)
	case k == keyMeta:
		var m meta
		json.Unmarshal(v, &m)
		var tabs, rs []string
		for svc, tv := range m.Tables {
			tabs = append(tabs, fmt.Sprintf("%s:%d", svc, tv.Version))
		}
		for svc, r := range m.Restarts {
			rs = append(rs, fmt.Sprintf("%s:%d@%s", svc, r.Failures, h.at(r.Last)))
		}
		sort.Strings(tabs)
		sort.Strings(rs)
		s := fmt.Sprintf("store meta next_seq=%d link_version=%d reserved=%d tables=[%s]", m.NextSeq, m.LinkVersion, m.LinkVersionReserved, strings.Join(tabs, " "))
		if len(rs) > 0 {
			s += " restarts=[" + strings.Join(rs, " ") + "]"
		}
		return s
	case strings.HasPrefix(k, prefixTask):
		var t taskRecord
		json.Unmarshal(v, &t)
		s := fmt.Sprintf("store task %s phase=%s", t.ID, t.Phase)
		if t.AgentID != "" {
			s += " agent=" + t.AgentID
		}
		if len(t.Ports) > 0 {
			s += " ports=" + kvs(map[string]any{"": t.Ports})[1:]
		}
		if t.State != "" {
			s += " state=" + t.State
		}
		if !t.Retiring.IsZero() {
			s += " retiring=" + h.at(t.Retiring)
		}
		if t.Orphan {
			s += " orphan"
		}
		if !t.KillSent.IsZero() {
			s += " kill_sent=" + h.at(t.KillSent)
		}
		for _, a := range t.Attributes {
			s += " " + a.Name + "=" + a.GetText().GetValue()
		}
		return s
	}
	return "store " + k
}

func (h *scriptHarness) calls(cs []*scheduler.Call) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = h.call(c)
	}
	sort.Strings(out)
	return out
}

// call renders a Mesos call briefly.
func (h *scriptHarness) call(c *scheduler.Call) string {
	switch c.Type {
	case scheduler.Call_ACCEPT:
		var ids, tasks []string
		for _, id := range c.Accept.OfferIDs {
			ids = append(ids, id.Value)
		}
		for _, op := range c.Accept.Operations {
			if op.Launch == nil {
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				var res []string
				for _, r := range ti.Resources {
					res = append(res, resource(r))
				}
				tasks = append(tasks, ti.TaskID.Value+"("+strings.Join(res, " ")+")")
			}
		}
		return fmt.Sprintf("ACCEPT offers=%s launch=[%s]", strings.Join(ids, ","), strings.Join(tasks, " "))
	case scheduler.Call_DECLINE:
		var ids []string
		for _, id := range c.Decline.OfferIDs {
			ids = append(ids, id.Value)
		}
		s := "DECLINE " + strings.Join(ids, ",")
		if f := c.Decline.Filters; f != nil && f.RefuseSeconds != nil {
			s += fmt.Sprintf(" refuse=%gs", *f.RefuseSeconds)
		}
		return s
	case scheduler.Call_KILL:
		s := "KILL " + c.Kill.TaskID.Value + " agent=" + c.Kill.GetAgentID().GetValue()
		if kp := c.Kill.KillPolicy; kp != nil && kp.GracePeriod != nil {
			s += " grace=" + time.Duration(kp.GracePeriod.Nanoseconds).String()
		}
		return s
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		var ids []string
		for _, id := range c.AcceptInverseOffers.InverseOfferIDs {
			ids = append(ids, id.Value)
		}
		return "ACCEPT_INVERSE_OFFERS " + strings.Join(ids, ",")
	case scheduler.Call_ACKNOWLEDGE:
		return fmt.Sprintf("ACKNOWLEDGE %s uuid=%s", c.Acknowledge.TaskID.Value, c.Acknowledge.UUID)
	case scheduler.Call_RECONCILE:
		var ts []string
		for _, t := range c.Reconcile.Tasks {
			ts = append(ts, t.TaskID.Value)
		}
		sort.Strings(ts)
		if len(ts) == 0 {
			return "RECONCILE implicit"
		}
		return "RECONCILE " + strings.Join(ts, ",")
	case scheduler.Call_MESSAGE:
		msg, err := contract.Decode(c.Message.Data)
		if err != nil {
			return "MESSAGE ?" + err.Error()
		}
		var outs []string
		for g, ol := range msg.Snapshot.Out {
			outs = append(outs, fmt.Sprintf("%s->%s", g, strings.Join(ol.Peers, ",")))
		}
		sort.Strings(outs)
		return strings.TrimSpace(fmt.Sprintf("MESSAGE %s v%d %s", msg.TaskID, msg.Snapshot.Version, strings.Join(outs, " ")))
	}
	return c.Type.String()
}

// taskInfoLines renders what an ACCEPT launches: the executor's command
// and fetched URIs, its container, and the task's data.
func taskInfoLines(c *scheduler.Call) []string {
	if c.Type != scheduler.Call_ACCEPT {
		return nil
	}
	var out []string
	for _, op := range c.Accept.Operations {
		if op.Launch == nil {
			continue
		}
		for _, ti := range op.Launch.TaskInfos {
			id := ti.TaskID.Value
			ex := ti.Executor
			cmd := ex.Command
			var uris []string
			for _, u := range cmd.URIs {
				uris = append(uris, fmt.Sprintf("%s(executable=%v cache=%v)", u.Value, u.GetExecutable(), u.GetCache()))
			}
			out = append(out, fmt.Sprintf("taskinfo %s executor: shell=%v value=%q args=%q uris=%s", id, cmd.GetShell(), cmd.GetValue(), cmd.Arguments, strings.Join(uris, ",")))
			if ct := ex.Container; ct != nil {
				s := "taskinfo " + id + " container: " + ct.GetType().String()
				if im := ct.GetMesos().GetImage(); im != nil {
					s += fmt.Sprintf(" image=%s:%s cached=%v", im.GetType(), im.GetDocker().GetName(), im.GetCached())
				}
				for _, v := range ct.Volumes {
					s += fmt.Sprintf(" volume=%s:%s:%s", v.GetHostPath(), v.ContainerPath, v.GetMode())
				}
				out = append(out, s)
			} else {
				out = append(out, "taskinfo "+id+" container: none")
			}
			out = append(out, "taskinfo "+id+" data: "+string(ti.Data))
		}
	}
	return out
}

func resource(r mesos.Resource) string {
	switch {
	case r.Scalar != nil:
		return fmt.Sprintf("%s:%g", r.Name, r.Scalar.Value)
	case r.Ranges != nil:
		var rs []string
		for _, rg := range r.Ranges.Range {
			rs = append(rs, fmt.Sprintf("%d-%d", rg.Begin, rg.End))
		}
		return r.Name + ":" + strings.Join(rs, ",")
	}
	return r.Name
}
