package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"strings"

	"github.com/tiltai/tiltai/scheduler/core"
)

// metrics are the scheduler's Prometheus metrics, served on /metrics.
// Counters are bumped by the loop; gauges of the current state (tasks by
// phase, gate counters reported by executors) are computed by the loop at
// scrape time, so they are always consistent with each other.
type metrics struct {
	reg             *prometheus.Registry
	subscribed      prometheus.Gauge
	subscriptions   prometheus.Counter
	offers          prometheus.Counter
	declined        prometheus.Counter
	launches        prometheus.Counter
	running         prometheus.Counter
	kills           prometheus.Counter
	retired         prometheus.Counter
	failures        *prometheus.CounterVec
	updates         *prometheus.CounterVec
	acked           prometheus.Counter
	noUUID          prometheus.Counter
	unknownKilled   prometheus.Counter
	linkMessages    prometheus.Counter
	resends         prometheus.Counter
	tableVersions   prometheus.Counter
	linkAckLatency  prometheus.Histogram
	calls           *prometheus.CounterVec
	badMessages     prometheus.Counter
	nacks           prometheus.Counter
	divergent       prometheus.Counter
	callsFailed     *prometheus.CounterVec
	reconciliations prometheus.Counter
	storeWrites     prometheus.Counter
	held            *prometheus.GaugeVec
	unplaced        *prometheus.CounterVec
	inverseAccepted prometheus.Counter
	parseRefused    prometheus.Counter
	gateDropped     *prometheus.CounterVec
}

func newMetrics(s *Scheduler) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: name, Help: help})
		f(c)
		return c
	}
	m.subscribed = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "subscribed", Help: "1 while subscribed to a Mesos master."})
	f(m.subscribed)
	m.subscriptions = counter("subscriptions_total", "Successful SUBSCRIBE calls (1 + re-subscriptions).")
	m.offers = counter("offers_received_total", "Offers received.")
	m.declined = counter("offers_declined_total", "Offers declined.")
	m.launches = counter("task_launches_total", "Tasks sent to Mesos to launch.")
	m.running = counter("tasks_running_total", "Tasks that reached TASK_RUNNING.")
	m.kills = counter("task_kills_total", "Tasks the scheduler decided to kill (scale-down, replacement, orphans).")
	m.retired = counter("task_retirements_total", "Tasks drained (removed from every link table) before a kill.")
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "task_failures_total", Help: "Tasks that ended without being asked to (failed, finished, lost, …): each counts towards the service's relaunch backoff."}, []string{"service"})
	f(m.failures)
	m.updates = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "status_updates_total", Help: "Status updates received, by task state."}, []string{"state"})
	f(m.updates)
	m.acked = counter("status_updates_acknowledged_total", "Status updates acknowledged (those that carry a uuid), after their effect was stored.")
	m.noUUID = counter("status_updates_without_uuid_total", "Status updates without a uuid (made by the master, e.g. reconciliation answers): never acknowledged.")
	m.unknownKilled = counter("unknown_tasks_killed_total", "Live tasks Mesos reported that the scheduler has no record of (killed).")
	m.linkMessages = counter("link_messages_total", "Link-table MESSAGE calls sent to executors.")
	m.resends = counter("link_resends_total", "Link-table messages re-sent because the executor had not acknowledged.")
	m.tableVersions = counter("link_table_versions_total", "New link-table versions published.")
	m.linkAckLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "link_ack_latency_seconds",
		Help: "From publishing a table version to a task's acknowledgement of it.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	f(m.linkAckLatency)
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "mesos_calls_total", Help: "Calls made to the Mesos master, by type and result."}, []string{"call", "result"})
	f(m.calls)
	m.badMessages = counter("bad_executor_messages_total", "Executor messages ignored: malformed or about unknown tasks.")
	m.nacks = counter("link_nacks_total", "Link tables a service refused (it keeps its previous table).")
	m.divergent = counter("link_divergences_total", "Acknowledgements of a link version newer than the scheduler recorded (healed by republishing).")
	m.callsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "mesos_calls_repaired_total", Help: "Failed Mesos calls the loop repaired (re-reconciled, re-sent), by call type."}, []string{"call"})
	f(m.callsFailed)
	m.reconciliations = counter("reconciliations_total", "Reconciliation rounds started.")
	m.storeWrites = counter("store_writes_total", "State batches written to the store.")
	m.held = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "launches_held", Help: "Tasks of a service waiting out its crash backoff."}, []string{"service"})
	f(m.held)
	m.unplaced = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "scheduler", Name: "offers_unplaced_total",
		Help: "Offers that could not take a waiting task of a service, by reason (cpus, mem, disk, ports, role, a constraint, agent draining, maintenance, no offers); an offer may count under several."}, []string{"service", "reason"})
	f(m.unplaced)
	m.inverseAccepted = counter("inverse_offers_accepted_total", "Agents vacated for maintenance: inverse offers accepted once no task was left there.")
	m.parseRefused = counter("api_parse_refused_total", "Spec submissions and scales refused with 503 because the scheduler was already parsing as many specs as it does at once.")
	m.gateDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tiltai", Subsystem: "gate", Name: "ended_dropped_total",
		Help: "Messages the gates of ended tasks dropped, from each task's final counters (what closing a sender's out-gates dropped at its stop included); live tasks' are in tiltai_gate_messages{counter=\"dropped\"}."}, []string{"service", "gate"})
	f(m.gateDropped)
	f(&stateCollector{s: s})
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descTasks     = prometheus.NewDesc("tiltai_tasks", "Tasks by service and phase.", []string{"service", "phase"}, nil)
	descWanted    = prometheus.NewDesc("tiltai_service_instances", "Instances the accepted spec asks for.", []string{"service"}, nil)
	descUnacked   = prometheus.NewDesc("tiltai_links_unacked_tasks", "Running tasks that have not acknowledged their service's current link table.", []string{"service"}, nil)
	descSpec      = prometheus.NewDesc("tiltai_spec_version", "Version of the accepted spec.", nil, nil)
	descGate      = prometheus.NewDesc("tiltai_gate_messages", "Gate counters summed over a service's live tasks, as their executors last reported.", []string{"service", "gate", "counter"}, nil)
	descAppCount  = prometheus.NewDesc("tiltai_app_counter", "Application counters summed over a service's live tasks, as their executors last reported.", []string{"service", "name"}, nil)
	descWaiting   = prometheus.NewDesc("tiltai_tasks_waiting", "Tasks of a service waiting for an offer, labelled with the reason that ruled out most offers in the last round.", []string{"service", "reason"}, nil)
	descStatusAge = prometheus.NewDesc("tiltai_executor_status_age_seconds", "Age of the oldest executor status report among a service's running tasks.", []string{"service"}, nil)
)

// stateCollector computes the state gauges from the latest view at scrape
// time, so they are consistent with each other and never wait for the loop.
type stateCollector struct{ s *Scheduler }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasks, descWanted, descUnacked, descSpec, descGate, descAppCount, descStatusAge, descWaiting} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	v := s.view.Load()
	now := s.cfg.Now()
	tasks := map[[2]string]int{}
	unacked := map[string]int{}
	gates := map[[3]string]float64{}
	apps := map[[2]string]float64{}
	age := map[string]float64{}
	for i := range v.Tasks {
		t := &v.Tasks[i]
		tasks[[2]string{t.Service, t.Phase}]++
		if t.Phase != "running" {
			continue
		}
		if t.LinkVersion > 0 && t.Acked != t.LinkVersion {
			unacked[t.Service]++
		}
		st := t.Status
		if st == nil {
			continue
		}
		if a := now.Sub(st.At).Seconds(); a > age[t.Service] {
			age[t.Service] = a
		}
		for g, gc := range st.Gates {
			for name, v := range map[string]uint64{"sent": gc.Sent, "received": gc.Received, "dropped": gc.Dropped, "rerouted": gc.Rerouted, "refused": gc.Refused} {
				gates[[3]string{t.Service, g, name}] += float64(v)
			}
			gates[[3]string{t.Service, g, "queue_depth"}] += float64(gc.QueueDepth)
		}
		for n, v := range st.Counters {
			apps[[2]string{t.Service, n}] += float64(v)
		}
	}
	for k, v := range tasks {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
	for name, svc := range v.Spec.Services {
		ch <- prometheus.MustNewConstMetric(descWanted, prometheus.GaugeValue, float64(svc.Instances), name)
		ch <- prometheus.MustNewConstMetric(descUnacked, prometheus.GaugeValue, float64(unacked[name]), name)
	}
	ch <- prometheus.MustNewConstMetric(descSpec, prometheus.GaugeValue, float64(v.SpecVersion))
	for k, v := range gates {
		ch <- prometheus.MustNewConstMetric(descGate, prometheus.GaugeValue, v, k[0], k[1], k[2])
	}
	for k, v := range apps {
		ch <- prometheus.MustNewConstMetric(descAppCount, prometheus.GaugeValue, v, k[0], k[1])
	}
	for k, v := range age {
		ch <- prometheus.MustNewConstMetric(descStatusAge, prometheus.GaugeValue, v, k)
	}
	for name, sv := range v.Services {
		if w := sv.Waiting; w != nil {
			ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(w.Tasks), name, w.Top)
		}
	}
}

// add counts one step's metric facts.
func (m *metrics) add(f *core.Metrics) {
	if f.Subscribed != nil {
		m.subscribed.Set(map[bool]float64{false: 0, true: 1}[*f.Subscribed])
	}
	for _, c := range []struct {
		c prometheus.Counter
		n int
	}{
		{m.subscriptions, f.Subscriptions}, {m.offers, f.Offers}, {m.declined, f.Declined}, {m.launches, f.Launches},
		{m.running, f.Running}, {m.kills, f.Kills}, {m.retired, f.Retired}, {m.acked, f.Acked}, {m.noUUID, f.NoUUID},
		{m.unknownKilled, f.UnknownKilled}, {m.linkMessages, f.LinkMessages}, {m.resends, f.Resends},
		{m.tableVersions, f.TableVersions}, {m.badMessages, f.BadMessages}, {m.nacks, f.Nacks},
		{m.divergent, f.Divergent}, {m.reconciliations, f.Reconciliations}, {m.inverseAccepted, f.InverseAccepted},
	} {
		if c.n > 0 {
			c.c.Add(float64(c.n))
		}
	}
	for svc, n := range f.Failures {
		m.failures.WithLabelValues(svc).Add(float64(n))
	}
	for state, n := range f.Updates {
		m.updates.WithLabelValues(state).Add(float64(n))
	}
	for call, n := range f.CallsRepaired {
		m.callsFailed.WithLabelValues(call).Add(float64(n))
	}
	for svc, n := range f.Held {
		m.held.WithLabelValues(svc).Set(float64(n))
	}
	for k, n := range f.Unplaced {
		svc, reason, _ := strings.Cut(k, "\x00")
		m.unplaced.WithLabelValues(svc, reason).Add(float64(n))
	}
	for k, n := range f.GateDropped {
		svc, gate, _ := strings.Cut(k, "\x00")
		m.gateDropped.WithLabelValues(svc, gate).Add(float64(n))
	}
	for _, d := range f.AckLatency {
		m.linkAckLatency.Observe(d.Seconds())
	}
}
