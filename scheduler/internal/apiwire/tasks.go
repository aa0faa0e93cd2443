package apiwire

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/tiltai/tiltai/linkspec"
)

// Paging of GET /v1/tasks.
const (
	DefaultTaskLimit = 500
	MaxTaskLimit     = 5000
)

// TaskQuery is what GET /v1/tasks was asked: ?service=, ?phase=, ?limit=,
// ?after= (a task ID: the page starts after it in launch order) and
// ?view=summary.
type TaskQuery struct {
	Service string
	Phase   string
	Limit   int
	After   string
	Summary bool

	afterSeq uint64
}

// ParseTaskQuery reads and checks the query of GET /v1/tasks.
func ParseTaskQuery(q url.Values) (TaskQuery, error) {
	tq := TaskQuery{Service: q.Get("service"), Phase: q.Get("phase"), After: q.Get("after"), Limit: DefaultTaskLimit}
	if err := CheckName("?service=", tq.Service); err != nil {
		return tq, err
	}
	if tq.Phase != "" {
		if _, err := linkspec.ParsePhase(tq.Phase); err != nil {
			return tq, requestErr(http.StatusBadRequest, "?phase=%s is not a phase; give pending, launched, running, killing or unreachable", strconv.QuoteToASCII(tq.Phase))
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxTaskLimit {
			return tq, requestErr(http.StatusBadRequest, "?limit=%s: give 1 to %d tasks a page, and the next page with ?after= (the Link header has its URL)", strconv.QuoteToASCII(v), MaxTaskLimit)
		}
		tq.Limit = n
	}
	if tq.After != "" {
		seq, ok := TaskSeq(tq.After)
		if !ok {
			return tq, requestErr(http.StatusBadRequest, "?after=%s is not a task ID (SERVICE.N); give the last ID of the previous page", strconv.QuoteToASCII(tq.After))
		}
		tq.afterSeq = seq
	}
	switch v := q.Get("view"); v {
	case "":
	case "summary":
		tq.Summary = true
	default:
		return tq, requestErr(http.StatusBadRequest, "?view=%s: the only view is summary (task counts by service and phase)", strconv.QuoteToASCII(v))
	}
	return tq, nil
}

// TaskSeq is the launch serial N of a task ID SERVICE.N: tasks are listed
// in its order, and a cursor stays valid when its task is gone.
func TaskSeq(id string) (uint64, bool) {
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	return n, err == nil
}

// Task is what a listing needs of a task.
type Task struct {
	ID, Service, Phase string
}

func (q TaskQuery) match(t Task) bool {
	return (q.Service == "" || t.Service == q.Service) && (q.Phase == "" || t.Phase == q.Phase)
}

// Page picks the page from n tasks in launch order (task(i) describes the
// i-th): the indexes of the tasks to show, the cursor of the next page
// ("" on the last) and how many tasks match the filters in all.
func (q TaskQuery) Page(n int, task func(i int) Task) (page []int, next string, total int) {
	for i := 0; i < n; i++ {
		t := task(i)
		if !q.match(t) {
			continue
		}
		total++
		if q.After != "" {
			if seq, _ := TaskSeq(t.ID); seq <= q.afterSeq {
				continue
			}
		}
		switch {
		case len(page) < q.Limit:
			page = append(page, i)
		case next == "":
			next = task(page[len(page)-1]).ID
		}
	}
	return page, next, total
}

// SetPageHeaders tells the client how many tasks match (X-Total-Count)
// and where the next page is (Link: <…?after=ID>; rel="next"). The body
// stays a JSON array of tasks, as before paging, so old clients read it.
func SetPageHeaders(w http.ResponseWriter, r *http.Request, next string, total int) {
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if next == "" {
		return
	}
	q := r.URL.Query()
	q.Set("after", next)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
}

// TaskSummary is GET /v1/tasks?view=summary: how many tasks each service
// has in each phase (of those matching ?service= and ?phase=).
type TaskSummary struct {
	Total    int            `json:"total"`
	Services []ServiceTasks `json:"services"`
}

// ServiceTasks is one service's task counts.
type ServiceTasks struct {
	Service string         `json:"service"`
	Total   int            `json:"total"`
	Phases  map[string]int `json:"phases"`
}

// Summarize counts the matching tasks by service and phase.
func (q TaskQuery) Summarize(n int, task func(i int) Task) TaskSummary {
	by := map[string]*ServiceTasks{}
	sum := TaskSummary{Services: []ServiceTasks{}}
	for i := 0; i < n; i++ {
		t := task(i)
		if !q.match(t) {
			continue
		}
		st := by[t.Service]
		if st == nil {
			st = &ServiceTasks{Service: t.Service, Phases: map[string]int{}}
			by[t.Service] = st
		}
		st.Total++
		st.Phases[t.Phase]++
		sum.Total++
	}
	for _, st := range by {
		sum.Services = append(sum.Services, *st)
	}
	sort.Slice(sum.Services, func(i, j int) bool { return sum.Services[i].Service < sum.Services[j].Service })
	return sum
}
