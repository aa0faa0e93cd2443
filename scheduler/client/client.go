package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// DefaultURL is where `tiltai scheduler` listens unless told otherwise.
const DefaultURL = "http://127.0.0.1:7070"

// Limits on what the client reads, so a wrong URL or a broken server cannot
// make it buffer without end.
const (
	// MaxResponseBytes bounds one JSON answer (a thousand tasks' link
	// tables fit many times over).
	MaxResponseBytes = 256 << 20
	// maxErrorBytes bounds an error answer (every problem of a spec).
	maxErrorBytes = 8 << 20
)

// Client is a Tiltai scheduler API client. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	timeout time.Duration
	agent   string
	busy    *BusyRetry // nil: a 503 to a write is returned at once
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc (its transport, TLS, proxy) instead of a default
// client. Its Timeout should be zero: event streams last.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each request other than the event stream (default
// 35s: the scheduler itself gives up on a busy loop after 30s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithUserAgent sets the User-Agent header (default "tiltai-client").
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// New returns a client for the scheduler at baseURL: http(s)://HOST:PORT,
// optionally with a path prefix when the API is behind a reverse proxy, or
// just HOST:PORT (http). token, when not empty, is sent as a Bearer token
// on every request.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := ParseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("the scheduler token contains a line break; check the token file")
	}
	c := &Client{base: u, token: token, hc: &http.Client{}, timeout: 35 * time.Second, agent: "tiltai-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ParseURL checks and normalises a scheduler base URL.
func ParseURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no scheduler URL: give http://HOST:PORT")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("scheduler URL %q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheduler URL %q: scheme %q is not http or https", s, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("scheduler URL %q has no host; give http://HOST:PORT", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("scheduler URL %q: give only scheme, host, port and an optional path prefix (no query, fragment or user)", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// URL is the scheduler's base URL.
func (c *Client) URL() string { return c.base.String() }

// request is one call's description.
type request struct {
	method string
	path   string
	query  url.Values
	header http.Header
	body   []byte
	stream bool // no timeout: the answer is read for as long as ctx lasts
}

// errRequestTimeout is the cause of a request's own deadline, told apart
// from the caller's.
var errRequestTimeout = errors.New("request timeout")

// send makes the request and returns a 2xx answer; anything else becomes an
// *APIError, no answer an *UnreachableError, the end of ctx ctx's error.
// cancel must be called once the body is done with; the caller closes it.
func (c *Client) send(ctx context.Context, r request) (resp *http.Response, cancel context.CancelFunc, err error) {
	parent := ctx
	cancel = func() {}
	if !r.stream && c.timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, c.timeout, errRequestTimeout)
	}
	u := *c.base
	u.Path = c.base.Path + r.path
	u.RawQuery = r.query.Encode()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("cannot make the request %s %s: %w", r.method, r.path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", c.agent)
	resp, err = c.hc.Do(req)
	if err != nil {
		cancel()
		switch {
		case parent.Err() != nil:
			return nil, nil, fmt.Errorf("%s %s: %w", r.method, r.path, parent.Err())
		case errors.Is(context.Cause(ctx), errRequestTimeout):
			err = fmt.Errorf("no answer to %s %s within %s", r.method, r.path, c.timeout)
		default:
			err = unwrapURLError(err)
		}
		return nil, nil, &UnreachableError{URL: c.URL(), Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return resp, cancel, nil
	}
	defer cancel()
	defer resp.Body.Close()
	return nil, nil, readAPIError(r, resp)
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the
// method and URL that the UnreachableError already says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func readAPIError(r request, resp *http.Response) error {
	e := &APIError{Method: r.method, Path: r.path, StatusCode: resp.StatusCode, CurrentVersion: -1,
		RetryAfter: retryAfter(resp.Header, time.Now())}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body apitypes.Error
	if isJSON(resp.Header.Get("Content-Type")) && json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message, e.Problems = body.Error, body.Problems
		if body.Version != nil {
			e.CurrentVersion = *body.Version
		}
		return e
	}
	// Not the scheduler's JSON: a proxy, another server, or a route the
	// scheduler does not have. Say what came back.
	e.Unexpected = true
	e.Message = fmt.Sprintf("unexpected answer %q", resp.Status)
	if snippet := strings.TrimSpace(string(data)); snippet != "" && !isJSON(resp.Header.Get("Content-Type")) {
		if len(snippet) > 120 {
			snippet = snippet[:120] + "…"
		}
		e.Message += fmt.Sprintf(": %q", snippet)
	}
	if resp.StatusCode == http.StatusNotFound {
		e.Message += "; is this the URL of a Tiltai scheduler?"
	}
	return e
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, v any) (http.Header, error) {
	resp, cancel, err := c.send(ctx, request{method: http.MethodGet, path: path, query: query})
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	return resp.Header, decodeJSON(http.MethodGet, path, resp, v)
}

func decodeJSON(method, path string, resp *http.Response, v any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("cannot read the answer to %s %s: %w", method, path, err)
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("the answer to %s %s is larger than %d bytes", method, path, MaxResponseBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("cannot decode the answer to %s %s (is this a Tiltai scheduler of a matching version?): %w", method, path, err)
	}
	return nil
}

// Health is GET /health.
func (c *Client) Health(ctx context.Context) (apitypes.Health, error) {
	var h apitypes.Health
	_, err := c.getJSON(ctx, "/health", nil, &h)
	return h, err
}

// Metrics is GET /metrics: the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, cancel, err := c.send(ctx, request{method: http.MethodGet, path: "/metrics"})
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("cannot read the metrics: %w", err)
	}
	return data, nil
}

// Spec is the accepted spec, GET /v1/spec. (apitypes.SpecInfo is its
// wire form; the spec is kept here as JSON because linkspec.Spec is parsed,
// not unmarshalled: Parse turns it back into one.)
type Spec struct {
	// Version is 0 when no spec has been accepted yet.
	Version  int
	Name     string
	Accepted time.Time
	// JSON is the normalised spec as the scheduler encodes it.
	JSON json.RawMessage
	// Source is the text as submitted (YAML or JSON).
	Source string
}

// Parse parses the normalised spec.
func (s Spec) Parse() (*linkspec.Spec, error) {
	spec, probs := linkspec.Parse("spec.json", s.JSON)
	if err := probs.Err(); err != nil {
		return nil, fmt.Errorf("the scheduler's spec version %d does not parse here (a newer scheduler?):\n%w", s.Version, err)
	}
	return spec, nil
}

// Spec is GET /v1/spec.
func (c *Client) Spec(ctx context.Context) (Spec, error) {
	var info struct {
		Version  int             `json:"version"`
		Name     string          `json:"name"`
		Accepted time.Time       `json:"accepted"`
		Spec     json.RawMessage `json:"spec"`
		Source   string          `json:"source"`
	}
	if _, err := c.getJSON(ctx, "/v1/spec", nil, &info); err != nil {
		return Spec{}, err
	}
	return Spec{Version: info.Version, Name: info.Name, Accepted: info.Accepted, JSON: info.Spec, Source: info.Source}, nil
}

// SpecSource is GET /v1/spec?format=source: the accepted spec's text as
// submitted, and its version (from the ETag).
func (c *Client) SpecSource(ctx context.Context) (src []byte, version int, err error) {
	const path = "/v1/spec"
	resp, cancel, err := c.send(ctx, request{method: http.MethodGet, path: path, query: url.Values{"format": {"source"}}})
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	version, err = etagVersion(resp.Header.Get("ETag"))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	src, err = io.ReadAll(io.LimitReader(resp.Body, linkspec.MaxSpecBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read the spec source: %w", err)
	}
	if len(src) > linkspec.MaxSpecBytes {
		return nil, 0, fmt.Errorf("the spec source is larger than %d bytes", linkspec.MaxSpecBytes)
	}
	return src, version, nil
}

func etagVersion(etag string) (int, error) {
	v, err := strconv.Atoi(strings.Trim(strings.TrimPrefix(etag, "W/"), `"`))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("the answer has no spec version in its ETag (%q)", etag)
	}
	return v, nil
}

// WriteOption modifies a write (Submit, Scale).
type WriteOption func(*writeOptions)

type writeOptions struct {
	dryRun  bool
	ifMatch int // -1: any version
}

// DryRun asks what the write would change, changing nothing.
func DryRun() WriteOption { return func(o *writeOptions) { o.dryRun = true } }

// IfMatch makes the write conditional: it is refused with ErrConflict
// unless the current spec version is version (0: nothing submitted yet).
func IfMatch(version int) WriteOption { return func(o *writeOptions) { o.ifMatch = version } }

func (o writeOptions) apply(r *request) {
	if o.dryRun {
		if r.query == nil {
			r.query = url.Values{}
		}
		r.query.Set("dry_run", "1")
	}
	if o.ifMatch >= 0 {
		if r.header == nil {
			r.header = http.Header{}
		}
		r.header.Set("If-Match", strconv.Quote(strconv.Itoa(o.ifMatch)))
	}
}

func writeOpts(opts []WriteOption) writeOptions {
	o := writeOptions{ifMatch: -1}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Submit is PUT /v1/spec: the scheduler validates src (YAML or JSON; name
// locates its problems, e.g. the file name) and, unless it is a dry run or
// changes nothing, makes it the accepted spec under a new version.
func (c *Client) Submit(ctx context.Context, name string, src []byte, opts ...WriteOption) (apitypes.SubmitResult, error) {
	if len(src) > linkspec.MaxSpecBytes {
		return apitypes.SubmitResult{}, &APIError{Method: http.MethodPut, Path: "/v1/spec", StatusCode: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("the spec is larger than %d bytes; split it (not sent)", linkspec.MaxSpecBytes), CurrentVersion: -1}
	}
	ct := "application/yaml"
	if strings.HasSuffix(name, ".json") || bytes.HasPrefix(bytes.TrimSpace(src), []byte("{")) {
		ct = "application/json"
	}
	r := request{method: http.MethodPut, path: "/v1/spec", header: http.Header{"Content-Type": {ct}}, body: src}
	if name != "" {
		r.query = url.Values{"name": {specName(name)}}
	}
	if src == nil {
		r.body = []byte{}
	}
	writeOpts(opts).apply(&r)
	return c.write(ctx, r)
}

// Scale is POST /v1/services/{service}/scale: a new spec version with the
// service's instance count changed.
func (c *Client) Scale(ctx context.Context, service string, instances int, opts ...WriteOption) (apitypes.SubmitResult, error) {
	body, _ := json.Marshal(map[string]int{"instances": instances})
	r := request{method: http.MethodPost, path: "/v1/services/" + url.PathEscape(service) + "/scale",
		header: http.Header{"Content-Type": {"application/json"}}, body: body}
	writeOpts(opts).apply(&r)
	return c.write(ctx, r)
}

// specName fits a file name to what the scheduler takes as a spec's name:
// control and bidi characters shown escaped (the scheduler refuses them
// raw), at most apitypes.MaxNameBytes, keeping the end (the file's own
// name) of a long path.
func specName(name string) string {
	name = termsafe.String(name)
	for len(name) > apitypes.MaxNameBytes {
		_, n := utf8.DecodeRuneInString(name)
		name = name[n:]
	}
	return name
}

func (c *Client) writeOnce(ctx context.Context, r request) (apitypes.SubmitResult, error) {
	var res apitypes.SubmitResult
	resp, cancel, err := c.send(ctx, r)
	if err != nil {
		return res, err
	}
	defer cancel()
	defer resp.Body.Close()
	return res, decodeJSON(r.method, r.path, resp, &res)
}

// Tasks is GET /v1/tasks, of one service when service is not empty: every
// task, in launch order, fetched page by page.
func (c *Client) Tasks(ctx context.Context, service string) ([]apitypes.TaskInfo, error) {
	q := apitypes.TaskQuery{Service: service, Limit: apitypes.MaxTaskLimit}
	out := []apitypes.TaskInfo{}
	for {
		p, err := c.TasksPage(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Tasks...)
		if p.Next == "" {
			return out, nil
		}
		q.After = p.Next
	}
}

// TaskPage is one page of GET /v1/tasks.
type TaskPage struct {
	Tasks []apitypes.TaskInfo
	// Next is the cursor of the next page (TaskQuery.After); "" on the last.
	Next string
	// Total is how many tasks match the filters in all pages (-1 when the
	// scheduler did not say: one older than paging, which sent them all).
	Total int
}

// TasksPage is one page of GET /v1/tasks: the tasks matching q's Service
// and Phase after q.After, at most q.Limit (0: the scheduler's default,
// 500).
func (c *Client) TasksPage(ctx context.Context, q apitypes.TaskQuery) (TaskPage, error) {
	var p TaskPage
	hdr, err := c.getJSON(ctx, "/v1/tasks", taskValues(q), &p.Tasks)
	if err != nil {
		return p, err
	}
	p.Total = -1
	if n, err := strconv.Atoi(hdr.Get("X-Total-Count")); err == nil {
		p.Total = n
	}
	p.Next = nextAfter(hdr.Get("Link"))
	return p, nil
}

// TaskSummary is GET /v1/tasks?view=summary: task counts by service and
// phase, of the tasks matching q's Service and Phase.
func (c *Client) TaskSummary(ctx context.Context, q apitypes.TaskQuery) (apitypes.TaskSummary, error) {
	v := taskValues(q)
	v.Del("limit")
	v.Del("after")
	v.Set("view", "summary")
	var sum apitypes.TaskSummary
	_, err := c.getJSON(ctx, "/v1/tasks", v, &sum)
	return sum, err
}

func taskValues(q apitypes.TaskQuery) url.Values {
	v := url.Values{}
	for k, val := range map[string]string{"service": q.Service, "phase": q.Phase, "after": q.After} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// nextAfter reads the ?after= of a Link header's rel="next" URL.
func nextAfter(link string) string {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err == nil {
			return u.Query().Get("after")
		}
	}
	return ""
}

// Links is GET /v1/links: every task's link table and the version its
// executor acknowledged.
func (c *Client) Links(ctx context.Context) ([]apitypes.TaskLinks, error) {
	var out []apitypes.TaskLinks
	_, err := c.getJSON(ctx, "/v1/links", nil, &out)
	return out, err
}

// TaskFile is GET /v1/tasks/{id}/files/{name}: a piece of a task's stdout
// or stderr from its sandbox, length bytes from offset. An offset < 0
// asks for the file's size (Offset, no data), where a tail starts; a
// length < 0 reads as much as the agent gives at once.
func (c *Client) TaskFile(ctx context.Context, taskID, name string, offset, length int64) (apitypes.TaskFile, error) {
	q := url.Values{}
	if offset >= 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	if length >= 0 {
		q.Set("length", strconv.FormatInt(length, 10))
	}
	var f apitypes.TaskFile
	_, err := c.getJSON(ctx, "/v1/tasks/"+url.PathEscape(taskID)+"/files/"+url.PathEscape(name), q, &f)
	return f, err
}

// Status is GET /v1/status: how far the running system is from the spec.
func (c *Client) Status(ctx context.Context) (apitypes.Status, error) {
	st, _, err := c.status(ctx)
	return st, err
}

// status also returns the scheduler's clock (the Date header; zero when
// absent), to judge held_until without trusting this machine's clock.
func (c *Client) status(ctx context.Context) (apitypes.Status, time.Time, error) {
	var st apitypes.Status
	hdr, err := c.getJSON(ctx, "/v1/status", nil, &st)
	if err != nil {
		return st, time.Time{}, err
	}
	at, _ := http.ParseTime(hdr.Get("Date"))
	return st, at, nil
}
