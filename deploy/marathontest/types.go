package marathontest

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// App is an app definition as Marathon stores and returns it (the fields
// this server supports; others sent by a client are ignored, as Marathon
// ignores unknown fields).
type App struct {
	ID                         string            `json:"id"`
	Cmd                        *string           `json:"cmd"`
	Args                       []string          `json:"args"`
	User                       *string           `json:"user"`
	Env                        map[string]string `json:"env"`
	Instances                  int               `json:"instances"`
	CPUs                       float64           `json:"cpus"`
	Mem                        float64           `json:"mem"`
	Disk                       float64           `json:"disk"`
	Fetch                      []Fetch           `json:"fetch"`
	PortDefinitions            []PortDefinition  `json:"portDefinitions"`
	RequirePorts               bool              `json:"requirePorts"`
	BackoffSeconds             float64           `json:"backoffSeconds"`
	BackoffFactor              float64           `json:"backoffFactor"`
	MaxLaunchDelaySeconds      float64           `json:"maxLaunchDelaySeconds"`
	HealthChecks               []HealthCheck     `json:"healthChecks"`
	UpgradeStrategy            UpgradeStrategy   `json:"upgradeStrategy"`
	Labels                     map[string]string `json:"labels"`
	Constraints                [][]string        `json:"constraints"`
	TaskKillGracePeriodSeconds *float64          `json:"taskKillGracePeriodSeconds,omitempty"`
	Version                    string            `json:"version"`
	VersionInfo                VersionInfo       `json:"versionInfo"`
}

// PortDefinition is one host port an app's task gets.
type PortDefinition struct {
	Port     int               `json:"port"`
	Protocol string            `json:"protocol"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// HealthCheck is an app health check; this server performs HTTP-style ones
// (HTTP, MESOS_HTTP) and treats TCP-style ones as a TCP connect.
type HealthCheck struct {
	Protocol               string  `json:"protocol"`
	Path                   *string `json:"path,omitempty"`
	PortIndex              *int    `json:"portIndex,omitempty"`
	Port                   *int    `json:"port,omitempty"`
	GracePeriodSeconds     int     `json:"gracePeriodSeconds"`
	IntervalSeconds        int     `json:"intervalSeconds"`
	TimeoutSeconds         int     `json:"timeoutSeconds"`
	MaxConsecutiveFailures int     `json:"maxConsecutiveFailures"`
	DelaySeconds           int     `json:"delaySeconds"`
}

// UpgradeStrategy bounds capacity during a restart.
type UpgradeStrategy struct {
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
}

// VersionInfo tells configuration changes from scaling.
type VersionInfo struct {
	LastScalingAt      string `json:"lastScalingAt"`
	LastConfigChangeAt string `json:"lastConfigChangeAt"`
}

// appInput is a client's app definition with "not given" kept apart from
// zero, so Marathon's defaults can be applied.
type appInput struct {
	ID                    *string           `json:"id"`
	Cmd                   *string           `json:"cmd"`
	Args                  []string          `json:"args"`
	User                  *string           `json:"user"`
	Env                   map[string]string `json:"env"`
	Instances             *int              `json:"instances"`
	CPUs                  *float64          `json:"cpus"`
	Mem                   *float64          `json:"mem"`
	Disk                  *float64          `json:"disk"`
	Fetch                 []Fetch           `json:"fetch"`
	URIs                  []string          `json:"uris"`
	Ports                 []int             `json:"ports"`
	PortDefinitions       []PortDefinition  `json:"portDefinitions"`
	RequirePorts          *bool             `json:"requirePorts"`
	BackoffSeconds        *float64          `json:"backoffSeconds"`
	BackoffFactor         *float64          `json:"backoffFactor"`
	MaxLaunchDelaySeconds *float64          `json:"maxLaunchDelaySeconds"`
	HealthChecks          []HealthCheck     `json:"healthChecks"`
	UpgradeStrategy       *struct {
		MinimumHealthCapacity *float64 `json:"minimumHealthCapacity"`
		MaximumOverCapacity   *float64 `json:"maximumOverCapacity"`
	} `json:"upgradeStrategy"`
	Labels                     map[string]string `json:"labels"`
	Constraints                [][]string        `json:"constraints"`
	TaskKillGracePeriodSeconds *float64          `json:"taskKillGracePeriodSeconds"`
	Container                  json.RawMessage   `json:"container"`
}

// detail is one entry of Marathon's error "details".
type detail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// errorBody is Marathon's error answer.
type errorBody struct {
	Message     string   `json:"message"`
	Details     []detail `json:"details,omitempty"`
	Deployments []idRef  `json:"deployments,omitempty"`
}

type idRef struct {
	ID string `json:"id"`
}

// decodeApp parses a request body into an app input, answering Marathon's
// 400 "Invalid JSON" shape on failure.
func decodeApp(body []byte) (*appInput, *errorBody) {
	var in appInput
	if err := json.Unmarshal(body, &in); err != nil {
		path, expected := "/", "error.expected.jsobject"
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			if te.Field != "" {
				path = "/" + strings.ReplaceAll(te.Field, ".", "/")
			}
			expected = "error.expected.js" + jsType(te.Type.Kind().String())
		}
		return nil, &errorBody{Message: "Invalid JSON", Details: []detail{{Path: path, Errors: []string{expected}}}}
	}
	return &in, nil
}

func jsType(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "float64", "float32":
		return "number"
	case "bool":
		return "boolean"
	case "slice":
		return "array"
	default:
		return "object"
	}
}

// pathIDSegment is Marathon's rule for each segment of an app id.
var pathIDSegment = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`)

const pathIDRule = `must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$'`

// normaliseID makes an id absolute without a trailing slash.
func normaliseID(id string) string {
	id = strings.TrimSuffix(id, "/")
	if !strings.HasPrefix(id, "/") {
		id = "/" + id
	}
	return id
}

func checkID(id string) []string {
	if id == "/" || id == "" {
		return []string{"must not be empty"}
	}
	for _, seg := range strings.Split(strings.TrimPrefix(id, "/"), "/") {
		if !pathIDSegment.MatchString(seg) {
			return []string{pathIDRule}
		}
	}
	return nil
}

// toApp applies Marathon's defaults and validates, returning the 422
// details of every problem.
func (in *appInput) toApp(id string) (App, []detail) {
	var details []detail
	bad := func(path, msg string) { details = append(details, detail{Path: path, Errors: []string{msg}}) }

	a := App{
		ID: id, Cmd: in.Cmd, Args: in.Args, User: in.User, Env: in.Env,
		Instances: 1, CPUs: 1, Mem: 128,
		Fetch:                      in.Fetch,
		BackoffSeconds:             1,
		BackoffFactor:              1.15,
		MaxLaunchDelaySeconds:      300,
		HealthChecks:               in.HealthChecks,
		UpgradeStrategy:            UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1},
		Labels:                     in.Labels,
		Constraints:                in.Constraints,
		TaskKillGracePeriodSeconds: in.TaskKillGracePeriodSeconds,
	}
	if msgs := checkID(id); msgs != nil {
		details = append(details, detail{Path: "/id", Errors: msgs})
	}
	if in.Instances != nil {
		a.Instances = *in.Instances
	}
	if in.CPUs != nil {
		a.CPUs = *in.CPUs
	}
	if in.Mem != nil {
		a.Mem = *in.Mem
	}
	if in.Disk != nil {
		a.Disk = *in.Disk
	}
	if in.RequirePorts != nil {
		a.RequirePorts = *in.RequirePorts
	}
	if in.BackoffSeconds != nil {
		a.BackoffSeconds = *in.BackoffSeconds
	}
	if in.BackoffFactor != nil {
		a.BackoffFactor = *in.BackoffFactor
	}
	if in.MaxLaunchDelaySeconds != nil {
		a.MaxLaunchDelaySeconds = *in.MaxLaunchDelaySeconds
	}
	if us := in.UpgradeStrategy; us != nil {
		if us.MinimumHealthCapacity != nil {
			a.UpgradeStrategy.MinimumHealthCapacity = *us.MinimumHealthCapacity
		}
		if us.MaximumOverCapacity != nil {
			a.UpgradeStrategy.MaximumOverCapacity = *us.MaximumOverCapacity
		}
	}
	for _, u := range in.URIs {
		a.Fetch = append(a.Fetch, Fetch{URI: u})
	}
	switch {
	case in.PortDefinitions != nil:
		a.PortDefinitions = in.PortDefinitions
	case in.Ports != nil:
		for _, p := range in.Ports {
			a.PortDefinitions = append(a.PortDefinitions, PortDefinition{Port: p, Protocol: "tcp"})
		}
	default:
		a.PortDefinitions = []PortDefinition{{Port: 0, Protocol: "tcp"}}
	}
	for i := range a.PortDefinitions {
		if a.PortDefinitions[i].Protocol == "" {
			a.PortDefinitions[i].Protocol = "tcp"
		}
	}
	if a.Env == nil {
		a.Env = map[string]string{}
	}
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}

	hasCmd, hasArgs := in.Cmd != nil && *in.Cmd != "", len(in.Args) > 0
	switch {
	case hasCmd && hasArgs:
		bad("/", "AppDefinition must either contain a 'cmd' or a 'args', but not both")
	case !hasCmd && !hasArgs && len(in.Container) == 0:
		bad("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}
	if len(in.Container) > 0 {
		bad("/container", "containers are not supported by this test server")
	}
	if a.Instances < 0 {
		bad("/instances", fmt.Sprintf("got %d, expected 0 or more", a.Instances))
	}
	if a.CPUs < 0 || math.IsNaN(a.CPUs) {
		bad("/cpus", fmt.Sprintf("got %v, expected 0.0 or more", a.CPUs))
	}
	if a.Mem < 0 || math.IsNaN(a.Mem) {
		bad("/mem", fmt.Sprintf("got %v, expected 0.0 or more", a.Mem))
	}
	if a.Disk < 0 {
		bad("/disk", fmt.Sprintf("got %v, expected 0.0 or more", a.Disk))
	}
	if a.BackoffFactor < 1 {
		bad("/backoffFactor", fmt.Sprintf("got %v, expected 1.0 or more", a.BackoffFactor))
	}
	if c := a.UpgradeStrategy.MinimumHealthCapacity; c < 0 || c > 1 {
		bad("/upgradeStrategy/minimumHealthCapacity", map[bool]string{true: "is greater than 1", false: "is less than 0"}[c > 1])
	}
	if c := a.UpgradeStrategy.MaximumOverCapacity; c < 0 || c > 1 {
		bad("/upgradeStrategy/maximumOverCapacity", map[bool]string{true: "is greater than 1", false: "is less than 0"}[c > 1])
	}
	for i, f := range a.Fetch {
		if f.URI == "" {
			bad(fmt.Sprintf("/fetch(%d)/uri", i), "must not be empty")
		}
	}
	for i := range a.HealthChecks {
		hc := &a.HealthChecks[i]
		p := fmt.Sprintf("/healthChecks(%d)", i)
		switch hc.Protocol {
		case "":
			hc.Protocol = "HTTP"
		case "HTTP", "HTTPS", "TCP", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP", "COMMAND":
		default:
			bad(p+"/protocol", fmt.Sprintf("error.expected.jsstring: one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP (got %q)", hc.Protocol))
		}
		if hc.Protocol == "COMMAND" {
			bad(p+"/protocol", "COMMAND health checks are not supported by this test server")
		}
		if hc.GracePeriodSeconds == 0 {
			hc.GracePeriodSeconds = 300
		}
		if hc.IntervalSeconds == 0 {
			hc.IntervalSeconds = 60
		}
		if hc.TimeoutSeconds == 0 {
			hc.TimeoutSeconds = 20
		}
		if hc.MaxConsecutiveFailures == 0 && hc.Protocol != "" {
			hc.MaxConsecutiveFailures = 3
		}
		if hc.Port == nil {
			idx := 0
			if hc.PortIndex != nil {
				idx = *hc.PortIndex
			}
			hc.PortIndex = &idx
			if idx < 0 || idx >= len(a.PortDefinitions) {
				bad(p, "Health check port indices must address an element of the ports array or container port mappings.")
			}
		}
	}
	return a, details
}
