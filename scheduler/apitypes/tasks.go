package apitypes

import (
	"sort"
	"strconv"
	"strings"
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
	afterSeq, _ := TaskSeq(q.After)
	for i := 0; i < n; i++ {
		t := task(i)
		if !q.match(t) {
			continue
		}
		total++
		if q.After != "" {
			if seq, _ := TaskSeq(t.ID); seq <= afterSeq {
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

// MaxNameBytes bounds a spec's ?name=.
const MaxNameBytes = 255
