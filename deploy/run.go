package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	marathon "github.com/gambol99/go-marathon"
)

// Result is a finished, verified deployment.
type Result struct {
	AppID        string
	Version      string // the app version deployed
	DeploymentID string
	Created      bool // the app did not exist before
	Tasks        []string
	Took         time.Duration
}

// ErrRolledBack: the deployment ended but the app's configuration is no
// longer the one deployed (a rollback, or another deployment replaced it).
var ErrRolledBack = errors.New("the deployment was rolled back or replaced")

// ErrUnhealthy: the app did not get a healthy task at the deployed
// configuration in time.
var ErrUnhealthy = errors.New("the app is not healthy")

// Run deploys cfg's app to Marathon and waits until its task at the new
// configuration runs and is healthy, writing progress lines to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	base := strings.TrimSuffix(cfg.Marathon, "/")
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Token != "" {
		// Not go-marathon's DCOSToken: that also rewrites every path to
		// /marathon/…; the --marathon URL is used as given.
		c := *client
		c.Transport = tokenTransport{token: cfg.Token, next: transportOf(client)}
		client = &c
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	p := &progress{out: out, start: time.Now()}

	info, err := preflight(ctx, client, base, cfg)
	if err != nil {
		return Result{}, err
	}
	p.line("Marathon %s at %s (leader %s)", info.Version, base, info.Leader)

	m, err := marathon.NewClient(marathon.Config{
		URL: base, HTTPClient: client,
		HTTPBasicAuthUser: cfg.User, HTTPBasicPassword: cfg.Password,
		PollingWaitTime: cfg.PollInterval,
	})
	if err != nil {
		return Result{}, fmt.Errorf("cannot use Marathon at %s: %w", base, err)
	}
	d := &deployer{cfg: cfg, m: m, p: p, base: base}
	return d.run(ctx)
}

type deployer struct {
	cfg  Config
	m    marathon.Marathon
	p    *progress
	base string
}

func (d *deployer) run(ctx context.Context) (Result, error) {
	id := d.cfg.appID()
	def := App(d.cfg)
	res := Result{AppID: id}

	current, err := d.m.Application(id)
	switch {
	case isCode(err, marathon.ErrCodeNotFound):
		created, err := d.m.CreateApplication(def)
		if err != nil {
			return res, d.explain("create app "+id, err)
		}
		res.Created, res.Version = true, created.Version
		for _, dep := range created.Deployments {
			res.DeploymentID = dep["id"]
		}
		d.p.line("created app %s: deployment %s to version %s", id, short(res.DeploymentID), res.Version)
	case err != nil:
		return res, d.explain("read app "+id, err)
	default:
		dep, err := d.m.UpdateApplication(def, d.cfg.Force)
		if err != nil {
			return res, d.explain("update app "+id, err)
		}
		res.DeploymentID, res.Version = dep.DeploymentID, dep.Version
		d.p.line("updating app %s from version %s: deployment %s to version %s", id, current.Version, short(res.DeploymentID), res.Version)
	}
	if res.Version == "" {
		return res, fmt.Errorf("marathon accepted app %s but did not say which version it deploys", id)
	}

	if err := d.follow(ctx, id, res.DeploymentID); err != nil {
		return res, err
	}
	tasks, err := d.verify(ctx, id, res.Version)
	if err != nil {
		return res, err
	}
	res.Tasks = tasks
	res.Took = time.Since(d.p.start)
	d.p.line("app %s is running and healthy at version %s: %s", id, res.Version, strings.Join(tasks, ", "))
	return res, nil
}

// follow waits until the deployment leaves /v2/deployments, reporting its
// steps and the app's task changes.
func (d *deployer) follow(ctx context.Context, id, depID string) error {
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	var lastStep string
	watch := newTaskWatch(d.p)
	for {
		deps, err := d.m.Deployments()
		if err != nil {
			d.p.once("poll-deployments", "cannot read Marathon's deployments (%v); still trying", d.explain("list deployments", err))
		} else {
			var mine *marathon.Deployment
			for _, dep := range deps {
				if dep.ID == depID {
					mine = dep
				}
			}
			if mine == nil {
				d.p.line("deployment %s is no longer in progress", short(depID))
				return nil
			}
			var acts []string
			for _, a := range mine.CurrentActions {
				acts = append(acts, a.Action+" "+a.App)
			}
			step := fmt.Sprintf("step %d/%d: %s", mine.CurrentStep, mine.TotalSteps, strings.Join(acts, ", "))
			if step != lastStep {
				d.p.line("deployment %s %s", short(depID), step)
				lastStep = step
			}
		}
		if app, err := d.m.Application(id); err == nil {
			watch.update(app)
		}
		select {
		case <-ctx.Done():
			return d.timeout(id, depID, watch)
		case <-tick.C:
		}
	}
}

func (d *deployer) timeout(id, depID string, w *taskWatch) error {
	msg := fmt.Sprintf("deployment %s of %s did not finish within %v", depID, id, d.cfg.Timeout)
	if w.lastFailure != "" {
		msg += "; last task failure: " + w.lastFailure
	}
	return fmt.Errorf("%s. It is still in progress in Marathon; to roll it back: curl -X DELETE %s/v2/deployments/%s",
		msg, d.base, depID)
}

// verify checks the app itself: the deployed configuration is in force, and
// its tasks at that configuration run and pass their health checks.
// WaitOnDeployment-style waiting alone would call a rolled-back deployment
// a success.
func (d *deployer) verify(ctx context.Context, id, deployed string) ([]string, error) {
	want, err := parseVersion(deployed)
	if err != nil {
		return nil, fmt.Errorf("marathon gave version %q for app %s: %w", deployed, id, err)
	}
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	watch := newTaskWatch(d.p)
	for {
		app, err := d.m.Application(id)
		if isCode(err, marathon.ErrCodeNotFound) {
			return nil, fmt.Errorf("%w: app %s no longer exists (the deployment that created it was rolled back)", ErrRolledBack, id)
		}
		if err == nil {
			watch.update(app)
			cfgAt := app.Version
			if app.VersionInfo != nil && app.VersionInfo.LastConfigChangeAt != "" {
				cfgAt = app.VersionInfo.LastConfigChangeAt
			}
			changed, perr := parseVersion(cfgAt)
			if perr == nil && changed.After(want) {
				return nil, fmt.Errorf("%w: app %s has configuration version %s, newer than the deployed %s; "+
					"Marathon rolled the deployment back (DELETE /v2/deployments/{id}) or another deployment replaced it",
					ErrRolledBack, id, cfgAt, deployed)
			}
			if tasks, ok := healthyAt(app, changed); ok {
				return tasks, nil
			}
		} else {
			d.p.once("poll-app", "cannot read app %s (%v); still trying", id, d.explain("read app", err))
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("app %s has no running, healthy task at version %s after %v", id, deployed, d.cfg.Timeout)
			if watch.lastFailure != "" {
				msg += "; last task failure: " + watch.lastFailure
			}
			return nil, fmt.Errorf("%w: %s", ErrUnhealthy, msg)
		case <-tick.C:
		}
	}
}

// healthyAt: the app's instances run at configuration cfgAt or later, each
// passing every health check.
func healthyAt(app *marathon.Application, cfgAt time.Time) ([]string, bool) {
	want := 1
	if app.Instances != nil {
		want = *app.Instances
	}
	var ok []string
	for _, t := range app.Tasks {
		v, err := parseVersion(t.Version)
		if err != nil || v.Before(cfgAt) || t.State != "TASK_RUNNING" {
			continue
		}
		healthy := app.HealthChecks == nil || len(*app.HealthChecks) == 0
		if !healthy && len(t.HealthCheckResults) > 0 {
			healthy = true
			for _, r := range t.HealthCheckResults {
				if r == nil || !r.Alive {
					healthy = false
				}
			}
		}
		if healthy {
			ok = append(ok, fmt.Sprintf("task %s on %s", t.ID, hostPorts(t)))
		}
	}
	sort.Strings(ok)
	return ok, len(ok) >= want && want > 0
}

func hostPorts(t *marathon.Task) string {
	if len(t.Ports) == 0 {
		return t.Host
	}
	return net.JoinHostPort(t.Host, fmt.Sprint(t.Ports[0]))
}

// parseVersion reads Marathon's ISO-8601 versions.
func parseVersion(v string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, v)
}

// taskWatch prints a line when a task appears, changes state or health, or
// the app records a new task failure.
type taskWatch struct {
	p           *progress
	seen        map[string]string
	lastFailure string
}

func newTaskWatch(p *progress) *taskWatch { return &taskWatch{p: p, seen: map[string]string{}} }

func (w *taskWatch) update(app *marathon.Application) {
	for _, t := range app.Tasks {
		state := t.State
		if t.State == "TASK_RUNNING" {
			state += " on " + hostPorts(t)
		}
		for _, r := range t.HealthCheckResults {
			if r == nil {
				continue
			}
			switch {
			case r.Alive:
				state += ", healthy"
			case r.FirstSuccess == "":
				// Still starting: its failures are the grace period's.
				state += ", health check not passed yet"
			default:
				state += ", unhealthy"
				if r.LastFailureCause != "" {
					state += " (" + r.LastFailureCause + ")"
				}
			}
		}
		if w.seen[t.ID] != state {
			w.p.line("task %s (version %s): %s", t.ID, t.Version, state)
			w.seen[t.ID] = state
		}
	}
	if f := app.LastTaskFailure; f != nil {
		desc := fmt.Sprintf("%s %s at version %s: %s", f.TaskID, f.State, f.Version, f.Message)
		if desc != w.lastFailure {
			if w.lastFailure != "" || f.Version == app.Version {
				w.p.line("task failed: %s", desc)
			}
			w.lastFailure = desc
		}
	}
}

// explain turns go-marathon's errors into what went wrong and what to do.
func (d *deployer) explain(what string, err error) error {
	var apiErr *marathon.APIError
	switch {
	case errors.As(err, &apiErr):
		switch apiErr.ErrCode {
		case marathon.ErrCodeUnauthorized:
			return fmt.Errorf("cannot %s: Marathon refused the credentials (401): %w; check --marathon-user/--marathon-password or --marathon-token", what, err)
		case marathon.ErrCodeForbidden:
			return fmt.Errorf("cannot %s: the Marathon user may not do this (403): %w", what, err)
		case marathon.ErrCodeAppLocked:
			return fmt.Errorf("cannot %s: a deployment of the app is already in progress (409): %w; wait for it to finish, "+
				"or rerun with --force to cancel it", what, err)
		case marathon.ErrCodeInvalidBean:
			return fmt.Errorf("cannot %s: Marathon rejected the app definition (422): %w", what, err)
		case marathon.ErrCodeBadRequest:
			return fmt.Errorf("cannot %s: Marathon could not read the request (400): %w", what, err)
		case marathon.ErrCodeDuplicateID:
			return fmt.Errorf("cannot %s: the app was created meanwhile by someone else (409): %w; run deploy again to update it", what, err)
		}
		return fmt.Errorf("cannot %s: %w", what, err)
	case errors.Is(err, marathon.ErrMarathonDown):
		return fmt.Errorf("cannot %s: Marathon at %s is unreachable or has no leader (connection failed or HTTP 5xx)", what, d.base)
	case errors.Is(err, marathon.ErrInvalidResponse):
		return fmt.Errorf("cannot %s: Marathon's answer could not be read; is %s a Marathon?", what, d.base)
	}
	return fmt.Errorf("cannot %s: %w", what, err)
}

func isCode(err error, code int) bool {
	var apiErr *marathon.APIError
	return errors.As(err, &apiErr) && apiErr.ErrCode == code
}

// marathonInfo is the part of GET /v2/info shown to the user.
type marathonInfo struct {
	Version string `json:"version"`
	Leader  string `json:"leader"`
	Elected bool   `json:"elected"`
}

// preflight asks /v2/info directly, before go-marathon, so that an
// unreachable Marathon, wrong credentials or a URL that is not Marathon get
// a precise error (go-marathon folds every connection failure into "marathon
// is down").
func preflight(ctx context.Context, client *http.Client, base string, cfg Config) (marathonInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/info", nil)
	if err != nil {
		return marathonInfo{}, fmt.Errorf("--marathon %q: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	if cfg.User != "" {
		req.SetBasicAuth(cfg.User, cfg.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return marathonInfo{}, fmt.Errorf("cannot reach Marathon at %s: %w; check --marathon and the network", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var msg struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &msg)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return marathonInfo{}, fmt.Errorf("marathon at %s refused the credentials (401: %s); check --marathon-user/--marathon-password or --marathon-token", base, msg.Message)
	case resp.StatusCode == http.StatusForbidden:
		return marathonInfo{}, fmt.Errorf("marathon at %s does not let this user read (403: %s)", base, msg.Message)
	case resp.StatusCode >= 500:
		return marathonInfo{}, fmt.Errorf("marathon at %s answered %s: it may have no leader yet; try again", base, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return marathonInfo{}, fmt.Errorf("marathon at %s answered %s to GET /v2/info; is --marathon the Marathon base URL?", base, resp.Status)
	}
	var info marathonInfo
	if err := json.Unmarshal(body, &info); err != nil || info.Version == "" {
		return marathonInfo{}, fmt.Errorf("%s/v2/info is not Marathon's info (%q); is --marathon the Marathon base URL?", base, truncate(body, 80))
	}
	return info, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// progress writes time-stamped lines; once-lines are for repeated
// conditions (a failing poll) that should not flood the terminal.
type progress struct {
	out   io.Writer
	start time.Time
	said  map[string]bool
}

func (p *progress) line(format string, args ...any) {
	if p.out == nil {
		return
	}
	fmt.Fprintf(p.out, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func (p *progress) once(key, format string, args ...any) {
	if p.said == nil {
		p.said = map[string]bool{}
	}
	if !p.said[key] {
		p.said[key] = true
		p.line(format, args...)
	}
}

type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "token="+t.token)
	return t.next.RoundTrip(r)
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}
