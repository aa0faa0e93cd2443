package marathontest

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
)

// maxBody bounds a request body; Marathon's own limit is about 1 MB.
const maxBody = 1 << 20

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "pong\n")
	})
	mux.HandleFunc("GET /v2/info", s.info)
	mux.HandleFunc("GET /v2/apps", s.listApps)
	mux.HandleFunc("POST /v2/apps", s.createApp)
	mux.HandleFunc("GET /v2/apps/{id...}", s.getApp)
	mux.HandleFunc("PUT /v2/apps/{id...}", s.putApp)
	mux.HandleFunc("DELETE /v2/apps/{id...}", s.deleteApp)
	mux.HandleFunc("GET /v2/deployments", s.listDeployments)
	mux.HandleFunc("DELETE /v2/deployments/{id}", s.deleteDeployment)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Message: "HTTP 404 Not Found"})
	})
	return s.auth(mux)
}

// auth answers as Marathon's basic-auth plugin does: 401 without valid
// credentials, 403 for a read-only user's change.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.opts.Users) > 0 && r.URL.Path != "/ping" {
			user, pass, ok := r.BasicAuth()
			want, known := s.opts.Users[user]
			if !ok || !known || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="Mesosphere"`)
				writeJSON(w, http.StatusUnauthorized, errorBody{Message: "Invalid username or password."})
				return
			}
			if s.opts.ReadOnly[user] && r.Method != http.MethodGet {
				writeJSON(w, http.StatusForbidden, errorBody{Message: "Not Authorized to perform this action!"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func unavailable(w http.ResponseWriter) {
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Message: "marathontest is shutting down"})
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	host := s.ln.Addr().String()
	port := s.ln.Addr().(*net.TCPAddr).Port
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "marathon", "version": MarathonVersion, "buildref": "marathontest",
		"elected": true, "leader": host, "frameworkId": "marathontest-0000",
		"marathon_config": map[string]any{
			"master": "marathontest", "failover_timeout": 604800, "framework_name": "marathon",
			"ha": false, "checkpoint": true, "hostname": "127.0.0.1", "mesos_role": nil,
		},
		"zookeeper_config": map[string]any{"zk": "zk://localhost:2181/marathon", "zk_timeout": 10000, "zk_session_timeout": 10000},
		"http_config":      map[string]any{"http_port": port},
		"event_subscriber": nil,
	})
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("id")
	var apps []view
	if !s.do(func() {
		for _, a := range s.apps {
			if filter == "" || strings.Contains(a.def.ID, filter) {
				apps = append(apps, s.view(a))
			}
		}
	}) {
		unavailable(w)
		return
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	if apps == nil {
		apps = []view{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": apps})
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Message: "Request entity too large"})
		return nil, false
	}
	return b, true
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	in, bad := decodeApp(body)
	if bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return
	}
	id := ""
	if in.ID != nil {
		id = normaliseID(*in.ID)
	}
	app, details := in.toApp(id)
	if len(details) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Message: "Object is not valid", Details: details})
		return
	}
	var code int
	var resp any
	var depID string
	if !s.do(func() {
		if _, exists := s.apps[id]; exists {
			code, resp = http.StatusConflict, errorBody{Message: "An app with id [" + id + "] already exists."}
			return
		}
		v := s.newVersion()
		app.Version, app.VersionInfo = v, VersionInfo{LastScalingAt: v, LastConfigChangeAt: v}
		a := &appState{def: app, tasks: map[string]*task{}}
		s.apps[id] = a
		d := s.startDeployment(a, "StartApplication", nil)
		depID = d.ID
		code, resp = http.StatusCreated, s.view(a)
	}) {
		unavailable(w)
		return
	}
	if code == http.StatusCreated {
		w.Header().Set("Location", s.URL()+"/v2/apps"+id)
		w.Header().Set("Marathon-Deployment-Id", depID)
	}
	writeJSON(w, code, resp)
}

func appID(r *http.Request) string { return normaliseID(r.PathValue("id")) }

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	id := appID(r)
	var found bool
	var v view
	if !s.do(func() {
		var a *appState
		if a, found = s.apps[id]; found && !a.removed {
			v = s.view(a)
		} else {
			found = false
		}
	}) {
		unavailable(w)
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, errorBody{Message: "App '" + id + "' does not exist"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": v})
}

// locked is Marathon's 409 for a change to an app in deployment.
func locked(d *deployment) errorBody {
	return errorBody{
		Message:     "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/" + d.ID + "'.",
		Deployments: []idRef{{d.ID}},
	}
}

func (s *Server) putApp(w http.ResponseWriter, r *http.Request) {
	id := appID(r)
	force := r.URL.Query().Get("force") == "true"
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	in, bad := decodeApp(body)
	if bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return
	}
	if in.ID != nil && normaliseID(*in.ID) != id {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Message: "Object is not valid",
			Details: []detail{{Path: "/id", Errors: []string{"id in the body (" + *in.ID + ") does not match the path (" + id + ")"}}}})
		return
	}
	app, details := in.toApp(id)
	if len(details) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Message: "Object is not valid", Details: details})
		return
	}
	var code int
	var resp any
	var depID string
	if !s.do(func() {
		v := s.newVersion()
		a, exists := s.apps[id]
		if exists && a.removed {
			code, resp = http.StatusConflict, locked(a.deployment)
			return
		}
		if !exists {
			app.Version, app.VersionInfo = v, VersionInfo{LastScalingAt: v, LastConfigChangeAt: v}
			a = &appState{def: app, tasks: map[string]*task{}}
			s.apps[id] = a
			d := s.startDeployment(a, "StartApplication", nil)
			depID = d.ID
			code, resp = http.StatusCreated, map[string]string{"deploymentId": d.ID, "version": v}
			return
		}
		if a.deployment != nil && !force {
			code, resp = http.StatusConflict, locked(a.deployment)
			return
		}
		prev := a.def
		action := "RestartApplication"
		app.VersionInfo = VersionInfo{LastScalingAt: v, LastConfigChangeAt: v}
		if onlyScaled(prev, app) {
			action = "ScaleApplication"
			app.VersionInfo.LastConfigChangeAt = prev.VersionInfo.LastConfigChangeAt
		}
		app.Version = v
		a.history = append(a.history, prev)
		a.def = app
		d := s.startDeployment(a, action, &prev)
		depID = d.ID
		code, resp = http.StatusOK, map[string]string{"deploymentId": d.ID, "version": v}
	}) {
		unavailable(w)
		return
	}
	if depID != "" {
		w.Header().Set("Marathon-Deployment-Id", depID)
	}
	writeJSON(w, code, resp)
}

// onlyScaled reports a change of the instance count alone, which Marathon
// deploys as a scale, not a restart.
func onlyScaled(prev, next App) bool {
	p, n := prev, next
	p.Instances, n.Instances = 0, 0
	p.Version, n.Version = "", ""
	p.VersionInfo, n.VersionInfo = VersionInfo{}, VersionInfo{}
	return canonical(p) == canonical(n)
}

func canonical(a App) string {
	var b strings.Builder
	_ = json.NewEncoder(&b).Encode(a)
	return b.String()
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	id := appID(r)
	force := r.URL.Query().Get("force") == "true"
	var code int
	var resp any
	if !s.do(func() {
		a, exists := s.apps[id]
		if !exists || a.removed {
			code, resp = http.StatusNotFound, errorBody{Message: "App '" + id + "' does not exist"}
			return
		}
		if a.deployment != nil && !force {
			code, resp = http.StatusConflict, locked(a.deployment)
			return
		}
		a.removed = true
		a.def.Version = s.newVersion()
		d := s.startDeployment(a, "StopApplication", nil)
		code, resp = http.StatusOK, map[string]string{"deploymentId": d.ID, "version": a.def.Version}
	}) {
		unavailable(w)
		return
	}
	writeJSON(w, code, resp)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	var out []deploymentView
	if !s.do(func() {
		for _, d := range s.deployments {
			out = append(out, d.view())
		}
	}) {
		unavailable(w)
		return
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	if out == nil {
		out = []deploymentView{}
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteDeployment cancels a deployment. Without force Marathon starts a new
// deployment that restores the configuration from before it (a rollback);
// with force it only stops the deployment, leaving the app as it is.
func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	force := r.URL.Query().Get("force") == "true"
	var code int
	var resp any
	if !s.do(func() {
		d, ok := s.deployments[id]
		if !ok {
			code, resp = http.StatusNotFound, errorBody{Message: "DeploymentPlan " + id + " does not exist"}
			return
		}
		a := s.apps[d.AppID]
		delete(s.deployments, id)
		a.deployment = nil
		if force {
			code = http.StatusAccepted
			return
		}
		v := s.newVersion()
		var rb *deployment
		if d.prev == nil {
			// Rolling back a start removes the app.
			a.removed = true
			a.def.Version = v
			rb = s.startDeployment(a, "StopApplication", nil)
		} else {
			cur := a.def
			back := *d.prev
			back.Version = v
			back.VersionInfo = VersionInfo{LastScalingAt: v, LastConfigChangeAt: v}
			a.history = append(a.history, cur)
			a.def = back
			rb = s.startDeployment(a, "RestartApplication", &cur)
		}
		s.log.Info("deployment rolled back", "deployment", id, "rollback", rb.ID, "app", a.def.ID)
		code, resp = http.StatusOK, map[string]string{"deploymentId": rb.ID, "version": v}
	}) {
		unavailable(w)
		return
	}
	if code == http.StatusAccepted {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, resp)
}
