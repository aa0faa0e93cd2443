package core

import (
	"maps"
	"slices"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	placer "github.com/tiltai/tiltai/scheduler/placement"
)

// View is an immutable copy of what readers ask about (the HTTP API, the
// metrics collector), made after a step. Nothing in it is changed once
// made: it shares only values the machine replaces rather than changes
// (the spec, link tables, executor reports, port maps).
type View struct {
	Subscribed   bool
	Master       string
	FrameworkID  string
	SpecVersion  int
	SpecName     string
	SpecAccepted time.Time
	Spec         *linkspec.Spec
	Source       []byte
	// Commands are the spec's services run by their image's ENTRYPOINT
	// and CMD, as read when it was accepted (shared, never changed).
	Commands map[string][]string
	// Tasks by launch serial.
	Tasks []TaskView
	// Services: every service with a spec entry, a table or a task.
	Services map[string]ServiceView
	// Agents the scheduler has seen (offers, inverse offers, its tasks),
	// by agent ID.
	Agents []AgentView
}

// AgentView is an agent as the scheduler sees it.
type AgentView struct {
	ID, Hostname string
	Attributes   map[string]string // formatted as constraints read them
	Region, Zone string
	// Unavailability is the maintenance window its offers or inverse
	// offers carry (nil: none).
	Unavailability *placer.Window
	Maintenance    bool // its tasks are being moved off it
	Draining       bool // drained (DRAIN_AGENT)
	Tasks          int  // task records placed on it
}

// TaskView is one task as the scheduler knows it.
type TaskView struct {
	ID, Service, Config, Phase string
	State, Reason, Message     string
	AgentID, Host              string
	Ports                      map[string]uint32
	Retiring                   bool
	Orphan                     bool
	Created, Updated           time.Time
	LinkVersion, Sent, Acked   uint64 // its service's current version; sent to and acknowledged by the task
	Status                     *TaskStatus
	Outdated                   bool     // its config is not the spec's current one
	Waiting                    *Waiting // pending: why its service's tasks wait
}

// ServiceView is one service's published table and crash history.
type ServiceView struct {
	Digest       string // the spec's current config digest
	TableVersion uint64
	Table        *linkspec.Table
	Restarts     linkspec.Restart
	LastFailure  string
	// Waiting says why some of its tasks wait for an offer (nil: none do).
	Waiting *Waiting
}

// View makes a View of the current state. It costs a copy of every task
// record: the driver makes one only after a step that changed something
// (Ready.ViewChanged).
func (m *Machine) View() *View {
	v := &View{
		Subscribed: m.subscribed, Master: m.leader, FrameworkID: m.st.frameworkID,
		SpecVersion: m.st.specRec.Version, SpecName: m.st.specRec.Name, SpecAccepted: m.st.specRec.Accepted,
		Spec: m.st.spec, Source: m.st.specRec.Source, Commands: m.st.specRec.Commands,
		Services: map[string]ServiceView{},
	}
	svc := func(name string) ServiceView {
		if s, ok := v.Services[name]; ok {
			return s
		}
		s := ServiceView{Digest: m.planner.Digest(name), Restarts: m.st.meta.Restarts[name], LastFailure: m.lastFail[name]}
		if w := m.waiting[name]; w != nil {
			c := *w
			c.Reasons = maps.Clone(w.Reasons)
			s.Waiting = &c
		}
		if tb := m.tables[name]; tb != nil {
			s.TableVersion, s.Table = tb.version, tb.table
		}
		v.Services[name] = s
		return s
	}
	for name := range m.st.spec.Services {
		svc(name)
	}
	for name := range m.tables {
		svc(name)
	}
	v.Tasks = make([]TaskView, 0, len(m.st.tasks))
	for _, t := range m.st.sortedTasks() {
		s := svc(t.Service)
		tv := TaskView{
			ID: t.ID, Service: t.Service, Config: t.Config, Phase: t.Phase, State: t.State, Reason: t.Reason, Message: t.Message,
			AgentID: t.AgentID, Host: t.Host, Ports: t.Ports, Retiring: !t.Retiring.IsZero(), Orphan: t.Orphan,
			Created: t.Created, Updated: t.Updated, LinkVersion: s.TableVersion, Status: m.status[t.ID],
			Outdated: t.Config != s.Digest,
		}
		if t.Phase == linkspec.Pending.String() {
			tv.Waiting = s.Waiting
		}
		if l := m.links[t.ID]; l != nil {
			tv.Sent, tv.Acked = l.sent, l.acked
		}
		v.Tasks = append(v.Tasks, tv)
	}
	ids := make(map[string]bool, len(m.agents)+len(m.idx.agent))
	for id := range m.agents {
		ids[id] = true
	}
	for id := range m.idx.agent {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		av := AgentView{ID: id, Tasks: len(m.idx.agent[id])}
		if a := m.agents[id]; a != nil {
			av.Hostname, av.Region, av.Zone, av.Maintenance, av.Draining = a.Hostname, a.Region, a.Zone, a.Maintenance, a.Draining
			if a.Unavailability != nil {
				w := *a.Unavailability
				av.Unavailability = &w
			}
			for _, at := range a.Attributes {
				if s, ok := placer.ValueString(at); ok {
					if av.Attributes == nil {
						av.Attributes = map[string]string{}
					}
					av.Attributes[at.Name] = s
				}
			}
		}
		if av.Hostname == "" {
			for _, t := range m.idx.agent[id] {
				av.Hostname = t.Host
				break
			}
		}
		v.Agents = append(v.Agents, av)
	}
	m.viewDirty = false
	return v
}
