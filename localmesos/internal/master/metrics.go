package master

import (
	"fmt"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// /metrics/snapshot with Mesos 1.11's key names (src/master/metrics.cpp,
// src/master/allocator/mesos/metrics.cpp, src/slave/metrics.cpp,
// docs/monitoring.md). Gauges are computed from the master's or agent's
// state when the snapshot is taken; the few counters Mesos keeps that state
// cannot give (calls, events, offers per framework) are counted where calls
// arrive and events leave; everything localmesos has no concept of
// (registrar, operations, revocable resources, gc, the fetcher cache, …) is
// a constant, listed in docs/localmesos.md.

// mesosMetrics counts what the master's state cannot give back.
type mesosMetrics struct {
	frameworks map[string]*frameworkMetrics // by framework id
	messages   map[string]int64             // master/messages_<name>
	validAcks  int64
}

type frameworkMetrics struct {
	calls, events, operations                                   map[string]int64
	offersSent, offersAccepted, offersDeclined, offersRescinded int64
}

func (mm *mesosMetrics) framework(id string) *frameworkMetrics {
	if mm.frameworks == nil {
		mm.frameworks = map[string]*frameworkMetrics{}
		mm.messages = map[string]int64{}
	}
	f := mm.frameworks[id]
	if f == nil {
		f = &frameworkMetrics{calls: map[string]int64{}, events: map[string]int64{}, operations: map[string]int64{}}
		mm.frameworks[id] = f
	}
	return f
}

// callMessages are the master/messages_* counters each scheduler call
// counts as (Master::receive and the handlers it calls).
var callMessages = map[scheduler.Call_Type]string{
	scheduler.Call_TEARDOWN: "unregister_framework", scheduler.Call_ACCEPT: "launch_tasks",
	scheduler.Call_DECLINE: "decline_offers", scheduler.Call_REVIVE: "revive_offers",
	scheduler.Call_SUPPRESS: "suppress_offers", scheduler.Call_KILL: "kill_task",
	scheduler.Call_ACKNOWLEDGE: "status_update_acknowledgement", scheduler.Call_RECONCILE: "reconcile_tasks",
	scheduler.Call_MESSAGE: "framework_to_executor", scheduler.Call_REQUEST: "resource_request",
	scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS: "operation_status_update_acknowledgement",
	scheduler.Call_RECONCILE_OPERATIONS:         "reconcile_operations",
}

// countCall counts a call of a subscribed framework that passed the
// stream checks.
func (m *Master) countCall(fw *framework, c *scheduler.Call) {
	f := m.metrics.framework(fw.id)
	f.calls[strings.ToLower(c.Type.String())]++
	if name, ok := callMessages[c.Type]; ok {
		m.metrics.messages[name]++
	}
	switch c.Type {
	case scheduler.Call_ACKNOWLEDGE:
		m.metrics.validAcks++
	case scheduler.Call_ACCEPT:
		f.offersAccepted += int64(len(c.Accept.OfferIDs))
		for _, op := range c.Accept.Operations {
			f.operations[strings.ToLower(op.GetType().String())]++
		}
	case scheduler.Call_DECLINE:
		f.offersDeclined += int64(len(c.Decline.OfferIDs))
	}
}

// countSubscribe counts a SUBSCRIBE that opened a stream: the call, and the
// SUBSCRIBED and HEARTBEAT the stream starts with.
func (m *Master) countSubscribe(c *scheduler.Call, r callResult) {
	if r.err != nil || r.stream == nil || r.fwID == "" {
		return
	}
	f := m.metrics.framework(r.fwID)
	f.calls["subscribe"]++
	f.events["subscribed"]++
	f.events["heartbeat"]++
	if c.Subscribe.FrameworkInfo.ID != nil {
		m.metrics.messages["reregister_framework"]++
	} else {
		m.metrics.messages["register_framework"]++
	}
}

// countEvent counts an event queued on a framework's stream.
func (m *Master) countEvent(fw *framework, e *scheduler.Event) {
	f := m.metrics.framework(fw.id)
	f.events[strings.ToLower(e.Type.String())]++
	switch e.Type {
	case scheduler.Event_OFFERS:
		f.offersSent += int64(len(e.Offers.Offers))
	case scheduler.Event_RESCIND:
		f.offersRescinded++
	}
}

// tasksByState counts a framework's tasks, the completed ones it still
// remembers included.
func tasksByState(fw *framework, into map[mesos.TaskState]int) {
	for _, t := range fw.tasks {
		into[t.state]++
	}
	for _, t := range fw.completed {
		into[t.state]++
	}
}

// metricEncode is libprocess' http::encode, used for framework names in
// metric keys: every byte but [A-Za-z0-9-._~] percent-encoded.
func metricEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// snapshot is the master's /metrics/snapshot in Mesos' names.
func (m *Master) snapshot(now time.Time) api.Metrics {
	s := api.Metrics{}
	s["master/elected"] = 1
	s["master/uptime_secs"] = now.Sub(m.started).Seconds()

	for id := range m.metrics.frameworks {
		if m.frameworks[id] == nil {
			delete(m.metrics.frameworks, id) // removed: Mesos drops its metrics
		}
	}

	// Frameworks.
	var fwActive, fwInactive, fwConnected, fwDisconnected float64
	tasks := map[mesos.TaskState]int{}
	for _, fw := range m.frameworks {
		if fw.active {
			fwActive++
		} else {
			fwInactive++
		}
		if fw.connected {
			fwConnected++
		} else {
			fwDisconnected++
		}
		tasksByState(fw, tasks)
		m.frameworkSnapshot(s, fw)
	}
	for _, fw := range m.completedFws {
		tasksByState(fw, tasks)
	}
	s["master/frameworks_active"], s["master/frameworks_inactive"] = fwActive, fwInactive
	s["master/frameworks_connected"], s["master/frameworks_disconnected"] = fwConnected, fwDisconnected
	for _, st := range append(append([]mesos.TaskState{}, api.ActiveStates[:5]...), api.TerminalStates...) {
		s["master/tasks_"+api.StateName(st)] = float64(tasks[st])
	}

	// Agents and their resources.
	var total, used, offered res.Resources
	var active, inactive, connected, disconnected, unreachable float64
	for id, a := range m.agents {
		switch {
		case a.removed:
			unreachable++
			continue
		case a.connected:
			connected++
		default:
			disconnected++
		}
		// Mesos deactivates a disconnected agent (Master::disconnect).
		if a.connected && !m.agentDeactivated(id) {
			active++
		} else {
			inactive++
		}
		total.AddInPlace(a.total)
		used.AddInPlace(a.used)
		offered.AddInPlace(a.offered)
	}
	s["master/slaves_active"], s["master/slaves_inactive"] = active, inactive
	s["master/slaves_connected"], s["master/slaves_disconnected"] = connected, disconnected
	s["master/slaves_unreachable"] = unreachable
	s["master/slave_registrations"] = float64(len(m.agents))
	s["master/slave_unreachable_completed"] = unreachable
	s.ResourceGauges("master/", total, used)
	s["master/outstanding_offers"] = float64(len(m.offers))
	s["master/operator_event_stream_subscribers"] = float64(len(m.ops.subs))
	s["master/event_queue_messages"] = float64(m.box.Size())

	// Status updates and messages.
	c := m.counters
	s["master/valid_status_updates"] = float64(c.updatesForwarded)
	s["master/invalid_status_updates"] = float64(c.updatesUndeliverable)
	s["master/messages_status_update"] = float64(c.updatesForwarded + c.updatesUndeliverable)
	s["master/valid_status_update_acknowledgements"] = float64(m.metrics.validAcks)
	s["master/valid_framework_to_executor_messages"] = float64(c.messagesToExecutors)
	s["master/valid_executor_to_framework_messages"] = float64(c.messagesToSchedulers)
	s["master/messages_executor_to_framework"] = float64(c.messagesToSchedulers)
	s["master/messages_register_slave"] = float64(len(m.agents))
	s["master/messages_update_slave"] = float64(len(m.agents))
	for _, n := range []string{"authenticate", "deactivate_framework", "decline_offers", "executor_to_framework",
		"exited_executor", "framework_to_executor", "kill_task", "launch_tasks", "operation_status_update",
		"operation_status_update_acknowledgement", "reconcile_operations", "reconcile_tasks", "register_framework",
		"reregister_framework", "reregister_slave", "resource_request", "revive_offers",
		"status_update_acknowledgement", "suppress_offers", "unregister_framework", "unregister_slave"} {
		if _, ok := s["master/messages_"+n]; !ok {
			s["master/messages_"+n] = float64(m.metrics.messages[n])
		}
	}

	// What localmesos has no concept of: constants.
	for _, k := range []string{"dropped_messages", "event_queue_dispatches", "event_queue_http_requests",
		"http_cache_hits", "invalid_executor_to_framework_messages", "invalid_framework_to_executor_messages",
		"invalid_operation_status_update_acknowledgements", "invalid_operation_status_updates",
		"invalid_status_update_acknowledgements", "valid_operation_status_update_acknowledgements",
		"valid_operation_status_updates", "recovery_slave_removals", "slave_removals",
		"slave_removals/reason_registered", "slave_removals/reason_unhealthy", "slave_removals/reason_unregistered",
		"slave_reregistrations", "slave_shutdowns_canceled", "slave_shutdowns_completed",
		"slave_shutdowns_scheduled", "slave_unreachable_canceled", "slave_unreachable_scheduled"} {
		s["master/"+k] = 0
	}
	opStates := []string{"dropped", "error", "failed", "finished", "gone_by_operator", "pending", "recovering", "unreachable"}
	for _, st := range opStates {
		s["master/operations/"+st] = 0
	}
	s["master/operations/total"] = 0
	for _, op := range operationNames {
		for _, st := range append(opStates, "total") {
			s["master/operations/"+op+"/"+st] = 0
		}
	}
	s["registrar/queued_operations"], s["registrar/registry_size_bytes"], s["registrar/state_fetch_ms"] = 0, 0, 0
	s.Timer("registrar/state_store_ms")

	m.allocatorSnapshot(s, total, used, offered, now)
	api.SystemSnapshot(s)
	return s
}

// operationNames are the offer operations Mesos counts (lower case).
var operationNames = []string{"create", "create_disk", "destroy", "destroy_disk", "grow_volume", "reserve", "shrink_volume", "unreserve"}

// frameworkSnapshot adds master/frameworks/<name>/<id>/… (Mesos'
// FrameworkMetrics, published with --publish_per_framework_metrics).
func (m *Master) frameworkSnapshot(s api.Metrics, fw *framework) {
	p := "master/frameworks/" + metricEncode(fw.info.Name) + "/" + fw.id + "/"
	f := m.metrics.framework(fw.id)
	s[p+"subscribed"] = api.Boolf(fw.connected)
	// counted adds <kind>/<name> for each name, and <kind> their sum.
	counted := func(kind string, names []string, counts map[string]int64) {
		var sum int64
		for _, n := range names {
			s[p+kind+"/"+n] = float64(counts[n])
			sum += counts[n]
		}
		s[p+kind] = float64(sum)
	}
	lower := func(enum map[int32]string) []string {
		var out []string
		for _, t := range enum {
			if t != "UNKNOWN" {
				out = append(out, strings.ToLower(t))
			}
		}
		return out
	}
	counted("calls", lower(scheduler.Call_Type_name), f.calls)
	counted("events", lower(scheduler.Event_Type_name), f.events)
	counted("operations", append([]string{"launch", "launch_group"}, operationNames...), f.operations)
	s[p+"offers/sent"], s[p+"offers/accepted"] = float64(f.offersSent), float64(f.offersAccepted)
	s[p+"offers/declined"], s[p+"offers/rescinded"] = float64(f.offersDeclined), float64(f.offersRescinded)
	for _, r := range fw.roles {
		s[p+"roles/"+r+"/suppressed"] = api.Boolf(fw.suppressed[r])
	}
	tasks := map[mesos.TaskState]int{}
	tasksByState(fw, tasks)
	for _, st := range api.ActiveStates {
		s[p+"tasks/active/"+strings.ToLower(st.String())] = float64(tasks[st])
	}
	for _, st := range api.TerminalStates {
		s[p+"tasks/terminal/"+strings.ToLower(st.String())] = float64(tasks[st])
	}
}

// allocatorSnapshot adds allocator/…: resources total and offered or
// allocated, per role the dominant share, the consumed resources (quota
// consumption, also under the root role "" as Mesos' role tree reports it)
// and the active DECLINE filters.
func (m *Master) allocatorSnapshot(s api.Metrics, total, used, offered res.Resources, now time.Time) {
	s["allocator/event_queue_dispatches"], s["allocator/mesos/event_queue_dispatches"] = 0, 0
	s["allocator/mesos/allocation_runs"] = 0
	s.Timer("allocator/mesos/allocation_run_ms")
	s.Timer("allocator/mesos/allocation_run_latency_ms")
	alloc := used.Add(offered)
	for _, n := range []string{"cpus", "mem", "disk", "gpus"} {
		if total.Scalar(n) > 0 {
			s["allocator/mesos/resources/"+n+"/total"] = total.Scalar(n)
			s["allocator/mesos/resources/"+n+"/offered_or_allocated"] = alloc.Scalar(n)
		}
	}
	roles := map[string]bool{}
	filters := map[string]int{}
	for _, fw := range m.frameworks {
		for _, r := range fw.roles {
			roles[r] = true
		}
		for _, fs := range fw.filters {
			for _, f := range fs {
				if f.until.After(now) {
					filters[f.role]++
				}
			}
		}
	}
	// Only "*" resources exist in localmesos, all allocated to role "*".
	for r := range roles {
		s["allocator/mesos/offer_filters/roles/"+r+"/active"] = float64(filters[r])
		share := 0.0
		if r == "*" {
			for _, n := range []string{"cpus", "mem", "disk", "gpus"} {
				if t := total.Scalar(n); t > 0 && alloc.Scalar(n)/t > share {
					share = alloc.Scalar(n) / t
				}
			}
		}
		s["allocator/mesos/roles/"+r+"/shares/dominant"] = share
	}
	for _, n := range []string{"cpus", "mem", "disk", "gpus"} {
		if v := used.Scalar(n); v > 0 {
			s["allocator/mesos/quota/roles/*/resources/"+n+"/consumed"] = v
			s["allocator/mesos/quota/roles//resources/"+n+"/consumed"] = v
		}
	}
}
