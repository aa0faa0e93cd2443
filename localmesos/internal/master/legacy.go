package master

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaintenance "github.com/mesos/mesos-go/api/v1/lib/maintenance"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/protojson"
	"github.com/tiltai/tiltai/localmesos/internal/res"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// The legacy read-only endpoints that tools still read: /master/frameworks,
// /master/slaves, /master/tasks, /master/flags and the agent's /flags, after
// Mesos 1.11's src/master/http.cpp, src/master/readonly_handler.cpp and
// docs/endpoints/. They are cut from the same rendering as /master/state, so
// the two never disagree.

// legacy answers a GET on the master's goroutine with render's document.
func (h *masterHTTP) legacy(render func(m *Master, q url.Values) []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		q := r.URL.Query()
		if !h.onMaster(func(m *Master) { body = render(m, q) }) {
			wire.WriteError(w, errMasterStopping)
			return
		}
		api.WriteJSON(w, body)
	}
}

// stateParts is /master/state cut into the members the legacy endpoints
// show, each kept as written.
type stateParts struct {
	Slaves                 []json.RawMessage `json:"slaves"`
	RecoveredSlaves        []json.RawMessage `json:"recovered_slaves"`
	Frameworks             []json.RawMessage `json:"frameworks"`
	CompletedFrameworks    []json.RawMessage `json:"completed_frameworks"`
	UnregisteredFrameworks []json.RawMessage `json:"unregistered_frameworks"`
}

func (m *Master) stateParts() stateParts {
	var p stateParts
	_ = json.Unmarshal(m.renderState(), &p) // our own output: it parses
	return p
}

func rawItems(items []json.RawMessage) []ojson.Raw {
	out := make([]ojson.Raw, 0, len(items))
	for _, it := range items {
		out = append(out, ojson.Raw(it))
	}
	return out
}

// renderFrameworks is /master/frameworks: the frameworks of /master/state.
func renderFrameworks(m *Master, _ url.Values) []byte {
	p := m.stateParts()
	return ojson.Marshal(ojson.Object{
		{K: "frameworks", V: rawItems(p.Frameworks)},
		{K: "completed_frameworks", V: rawItems(p.CompletedFrameworks)},
		{K: "unregistered_frameworks", V: rawItems(p.UnregisteredFrameworks)},
	})
}

// renderSlaves is /master/slaves: each agent as /master/state shows it, plus
// the "_full" resource lists Mesos' SlavesWriter adds (protobuf-shaped
// resources with their role and, when allocated, allocation_info).
func renderSlaves(m *Master, _ url.Values) []byte {
	p := m.stateParts()
	slaves := make([]ojson.Raw, 0, len(p.Slaves))
	for _, s := range p.Slaves {
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(s, &id)
		a := m.agents[id.ID]
		if a == nil {
			slaves = append(slaves, ojson.Raw(s))
			continue
		}
		full := ojson.Marshal(ojson.Object{
			{K: "reserved_resources_full", V: ojson.Object{}},
			{K: "unreserved_resources_full", V: api.RawList(fullResources(a.total, false))},
			{K: "used_resources_full", V: api.RawList(fullResources(a.used, true))},
			{K: "offered_resources_full", V: api.RawList(fullResources(a.offered, true))},
		})
		// Splice the members into the agent's object: "{...}" + "{...}" →
		// "{...,...}".
		obj := bytes.TrimSuffix(bytes.TrimSpace(s), []byte("}"))
		joined := append(append(append([]byte{}, obj...), ','), full[1:]...)
		slaves = append(slaves, ojson.Raw(joined))
	}
	return ojson.Marshal(ojson.Object{
		{K: "slaves", V: slaves},
		{K: "recovered_slaves", V: rawItems(p.RecoveredSlaves)},
	})
}

// fullResources is an agent's resources as Mesos' Resource protobufs in the
// agent's order, with role "*" and, for allocated ones, allocation_info.
func fullResources(r res.Resources, allocated bool) []mesos.Resource {
	style := res.OfferRole
	if allocated {
		style = res.Allocated
	}
	out := r.ToProto(style, false)
	star := "*"
	for i := range out {
		out[i].Role = &star
	}
	return out
}

// taskLimit is Mesos' TASK_LIMIT, the default of /master/tasks' limit.
const taskLimit = 100

// renderTasks is /master/tasks: the active, unreachable and completed tasks
// of the registered and completed frameworks, sorted by the timestamp of
// their first status (descending unless order=asc), then offset and limit
// applied, as Master::Http::_tasks does. framework_id and task_id narrow the
// list.
func renderTasks(m *Master, q url.Values) []byte {
	limit, offset := taskLimit, 0
	// Mesos parses both with numify<int> into a size_t: a negative limit
	// means no limit, a negative offset is past the end.
	if n, err := strconv.Atoi(q.Get("limit")); err == nil {
		limit = n
	}
	if n, err := strconv.Atoi(q.Get("offset")); err == nil {
		offset = n
	}
	asc := q.Get("order") == "asc"
	fwFilter, taskFilter := q.Get("framework_id"), q.Get("task_id")

	var fws []*framework
	for _, id := range api.SortedKeys(m.frameworks) {
		fws = append(fws, m.frameworks[id])
	}
	fws = append(fws, m.completedFws...)
	var tasks []*task
	for _, fw := range fws {
		if fwFilter != "" && fw.id != fwFilter {
			continue
		}
		for _, id := range api.SortedKeys(fw.tasks) {
			tasks = append(tasks, fw.tasks[id])
		}
		tasks = append(tasks, fw.completed...)
	}
	if taskFilter != "" {
		kept := tasks[:0]
		for _, t := range tasks {
			if t.info.TaskID.Value == taskFilter {
				kept = append(kept, t)
			}
		}
		tasks = kept
	}
	// TaskComparator: by the first status' timestamp; a task without
	// statuses sorts first when ascending.
	first := func(t *task) (float64, bool) {
		if len(t.statuses) == 0 {
			return 0, false
		}
		return t.statuses[0].GetTimestamp(), true
	}
	ascending := func(a, b *task) bool {
		ta, oka := first(a)
		tb, okb := first(b)
		switch {
		case !oka && !okb:
			return false
		case !oka:
			return true
		case !okb:
			return false
		}
		return ta < tb
	}
	sort.SliceStable(tasks, func(i, j int) bool {
		if asc {
			return ascending(tasks[i], tasks[j])
		}
		return ascending(tasks[j], tasks[i])
	})
	out := []ojson.Object{}
	if offset >= 0 && offset < len(tasks) {
		end := len(tasks)
		if limit >= 0 && offset+limit < end {
			end = offset + limit
		}
		for _, t := range tasks[offset:end] {
			out = append(out, taskJSON(t))
		}
	}
	return ojson.Marshal(ojson.Object{{K: "tasks", V: out}})
}

func renderMasterFlags(m *Master, _ url.Values) []byte { return api.FlagsJSON(m.flags()) }

// renderMaintenanceSchedule is /master/maintenance/schedule: the schedule
// as GET_MAINTENANCE_SCHEDULE holds it ({} when empty, as Mesos).
func renderMaintenanceSchedule(m *Master, _ url.Values) []byte {
	return stoutJSON(api.Raw(&m.maint.schedule))
}

// renderMaintenanceStatus is /master/maintenance/status: the machines
// draining and down, as GET_MAINTENANCE_STATUS.
func renderMaintenanceStatus(m *Master, _ url.Values) []byte {
	st := m.clusterStatus()
	return stoutJSON(api.Raw(&st))
}

// stoutJSON rewrites a JSON document with every object's keys in byte
// order: Mesos writes these endpoints through stout's JSON::Object, a
// std::map, where the v1 API keeps field order.
func stoutJSON(doc []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber() // nanoseconds since the epoch do not fit a float64
	var v any
	if err := d.Decode(&v); err != nil {
		return doc
	}
	out, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return doc
	}
	return out
}

// maintenanceSchedule answers /master/maintenance/schedule: GET reads the
// schedule, POST replaces it with the body's (a mesos.v1.maintenance.Schedule
// in JSON), refused with the operator call's texts; other methods get
// Mesos' 405.
func (h *masterHTTP) maintenanceSchedule(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.legacy(renderMaintenanceSchedule)(w, r)
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxLegacyBody+1))
		if err != nil || len(body) > maxLegacyBody {
			wire.WriteError(w, wire.BadRequest("Failed to parse the request body: too large or unreadable"))
			return
		}
		var s mmaintenance.Schedule
		if err := protojson.Unmarshal(body, &s); err != nil {
			wire.WriteError(w, wire.BadRequest("Failed to convert JSON into Schedule protobuf: %v", err))
			return
		}
		var werr *wire.Error
		if !h.onMaster(func(m *Master) { werr = m.updateSchedule(s) }) {
			wire.WriteError(w, errMasterStopping)
			return
		}
		if werr != nil {
			wire.WriteError(w, werr)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		wire.WriteError(w, &wire.Error{Status: http.StatusMethodNotAllowed, Text: "Expecting 'GET' or 'POST', received '" + r.Method + "'"})
	}
}

// maxLegacyBody bounds a legacy POST body (a schedule of many machines
// still fits).
const maxLegacyBody = 4 << 20
