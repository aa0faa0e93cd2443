package httpapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// parseTaskQuery reads and checks the query of GET /v1/tasks.
func parseTaskQuery(q url.Values) (apitypes.TaskQuery, error) {
	tq := apitypes.TaskQuery{Service: q.Get("service"), Phase: q.Get("phase"), After: q.Get("after"), Limit: apitypes.DefaultTaskLimit}
	if err := checkName("?service=", tq.Service); err != nil {
		return tq, err
	}
	if tq.Phase != "" {
		if _, err := linkspec.ParsePhase(tq.Phase); err != nil {
			return tq, statusErr(http.StatusBadRequest, "?phase=%s is not a phase; give pending, launched, running, killing or unreachable", strconv.QuoteToASCII(tq.Phase))
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > apitypes.MaxTaskLimit {
			return tq, statusErr(http.StatusBadRequest, "?limit=%s: give 1 to %d tasks a page, and the next page with ?after= (the Link header has its URL)", strconv.QuoteToASCII(v), apitypes.MaxTaskLimit)
		}
		tq.Limit = n
	}
	if tq.After != "" {
		if _, ok := apitypes.TaskSeq(tq.After); !ok {
			return tq, statusErr(http.StatusBadRequest, "?after=%s is not a task ID (SERVICE.N); give the last ID of the previous page", strconv.QuoteToASCII(tq.After))
		}
	}
	switch v := q.Get("view"); v {
	case "":
	case "summary":
		tq.Summary = true
	default:
		return tq, statusErr(http.StatusBadRequest, "?view=%s: the only view is summary (task counts by service and phase)", strconv.QuoteToASCII(v))
	}
	return tq, nil
}

// setPageHeaders tells the client how many tasks match (X-Total-Count)
// and where the next page is (Link: <…?after=ID>; rel="next"). The body
// stays a JSON array of tasks, as before paging, so old clients read it.
func setPageHeaders(w http.ResponseWriter, r *http.Request, next string, total int) {
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if next == "" {
		return
	}
	q := r.URL.Query()
	q.Set("after", next)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
}
