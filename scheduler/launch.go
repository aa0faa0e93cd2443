package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor"
	"github.com/tiltai/tiltai/gate/control"
)

func ctxBackground() context.Context { return context.Background() }

// taskInfo builds what Mesos launches: the task's resources and data, and
// an executor that is this very binary, fetched from this scheduler.
func (s *Scheduler) taskInfo(t *taskRecord, pl placement) (mesos.TaskInfo, error) {
	svc := s.st.spec.Services[t.Service]
	if svc == nil {
		return mesos.TaskInfo{}, fmt.Errorf("service %q is not in the spec", t.Service)
	}
	data := executor.TaskData{
		Service: t.Service, Command: svc.Command, Args: svc.Args, Env: svc.Env,
		Health: executor.Health{
			ReadyTimeout:    executor.D(svc.Health.ReadyTimeout.Std()),
			LivenessTimeout: executor.D(svc.Health.LivenessTimeout.Std()),
		},
		KillGracePeriod: executor.D(svc.KillGracePeriod.Std()),
	}
	for _, g := range s.st.spec.InGates(t.Service) {
		data.Gates = append(data.Gates, executor.Gate{Name: g, Pattern: control.Pattern(svc.Gates[g]), Port: int(t.Ports[g])})
	}
	for _, g := range s.st.spec.OutGates(t.Service) {
		data.Gates = append(data.Gates, executor.Gate{Name: g, Pattern: control.Pattern(svc.Gates[g])})
	}
	raw, err := executor.EncodeTaskData(data)
	if err != nil {
		return mesos.TaskInfo{}, err
	}
	var uris []mesos.CommandInfo_URI
	for _, u := range svc.URIs {
		u := u
		uri := mesos.CommandInfo_URI{Value: u.Value, Executable: &u.Executable, Extract: &u.Extract}
		if u.OutputFile != "" {
			uri.OutputFile = &u.OutputFile
		}
		uris = append(uris, uri)
	}
	// The name carries the content hash, so a fetcher cache can keep it.
	exe, extract, shell, cache := true, false, false, true
	value := "./" + s.art.name
	uris = append(uris, mesos.CommandInfo_URI{Value: s.art.url(s.apiHostPort()), Executable: &exe, Extract: &extract, Cache: &cache})
	fwID := mesos.FrameworkID{}
	if id := s.fwID.Load(); id != nil {
		fwID.Value = *id
	}
	grace := svc.KillGracePeriod.Std().Nanoseconds()
	return mesos.TaskInfo{
		Name:      t.ID,
		TaskID:    mesos.TaskID{Value: t.ID},
		AgentID:   mesos.AgentID{Value: t.AgentID},
		Resources: pl.Task,
		Executor: &mesos.ExecutorInfo{
			Type:        mesos.ExecutorInfo_CUSTOM,
			ExecutorID:  mesos.ExecutorID{Value: t.executorID()},
			FrameworkID: &fwID,
			Name:        strPtr("tiltai executor for " + t.ID),
			Source:      strPtr("tiltai"),
			Command: &mesos.CommandInfo{
				URIs:      uris,
				Shell:     &shell,
				Value:     &value,
				Arguments: []string{s.art.name, "executor"},
			},
			Resources: pl.Executor,
		},
		Data:       raw,
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}},
		Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: "tiltai.service", Value: strPtr(t.Service)},
			{Key: "tiltai.config", Value: strPtr(t.Config)},
		}},
	}, nil
}

func strPtr(s string) *string { return &s }

// artifact is the executor binary as served to agents: a private copy of
// this tiltai binary named by its hash, so an agent fetches exactly the
// bytes the name promises even if the file on disk is replaced meanwhile.
type artifact struct {
	name string // tiltai-<sha256 prefix>
	path string
	dir  string
	sum  string
}

func newArtifact(binary string) (*artifact, error) {
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cannot find this binary to serve as the executor: %w", err)
		}
		binary = exe
	}
	src, err := os.Open(binary)
	if err != nil {
		return nil, fmt.Errorf("cannot read the executor binary: %w", err)
	}
	defer src.Close()
	dir, err := os.MkdirTemp("", "tiltai-artifact-")
	if err != nil {
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	tmp := filepath.Join(dir, "staging")
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		dst.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	a := &artifact{name: "tiltai-" + sum[:16], dir: dir, sum: sum}
	a.path = filepath.Join(dir, a.name)
	if err := os.Rename(tmp, a.path); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	return a, nil
}

func (a *artifact) url(hostPort string) string {
	return "http://" + hostPort + "/v1/artifacts/" + a.name
}

func (a *artifact) close() { os.RemoveAll(a.dir) }

// serve answers GET /v1/artifacts/NAME: only the current binary's name.
func (a *artifact) serve(w http.ResponseWriter, r *http.Request, name string) {
	if name != a.name {
		http.Error(w, fmt.Sprintf("no artifact %q here; this scheduler serves %s", name, a.name), http.StatusNotFound)
		return
	}
	f, err := os.Open(a.path)
	if err != nil {
		http.Error(w, "cannot read the executor binary", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read the executor binary", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Checksum-Sha256", a.sum)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, a.name, st.ModTime(), f)
}
