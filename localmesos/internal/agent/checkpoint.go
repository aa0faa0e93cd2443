package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/tiltai/tiltai/localmesos/internal/api"
)

// Checkpointing: for frameworks with checkpoint=true the agent keeps, per
// executor run, what it needs to carry on after a restart: the framework and
// executor infos, the container id, the pid, every task and its
// unacknowledged updates. One small file per executor, replaced atomically
// once per mailbox batch in which the executor changed.

type execCheckpoint struct {
	Framework   []byte
	Executor    []byte
	ContainerID string
	Sandbox     string
	Pid         int
	Command     bool
	Tasks       []taskCheckpoint
}

type taskCheckpoint struct {
	Info    []byte
	State   int32
	Latest  []byte
	Pending []updateCheckpoint
}

type updateCheckpoint struct {
	Status, Stored []byte
	FromExecutor   bool
}

func (a *Agent) metaDir() string { return filepath.Join(a.workDir, "meta") }

func (a *Agent) checkpointPath(e *agentExecutor) string {
	return filepath.Join(a.metaDir(), "frameworks", e.fwID, "executors", e.info.ExecutorID.Value, "runs", e.containerID, "executor.json")
}

func (a *Agent) saveAgentID() error {
	if err := os.MkdirAll(a.metaDir(), 0o755); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(a.metaDir(), "agent_id"), []byte(a.id))
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (a *Agent) flushCheckpoints() {
	for e := range a.dirty {
		delete(a.dirty, e)
		fw := a.frameworks[e.fwID]
		if fw == nil || !fw.info.GetCheckpoint() || e.state == execTerminated {
			continue
		}
		if err := a.writeCheckpoint(fw, e); err != nil {
			a.log.Error("cannot checkpoint executor", "framework_id", e.fwID, "executor_id", e.info.ExecutorID.Value, "error", err)
		}
	}
}

func (a *Agent) writeCheckpoint(fw *agentFramework, e *agentExecutor) error {
	var ck execCheckpoint
	var err error
	if ck.Framework, err = fw.info.Marshal(); err != nil {
		return err
	}
	if ck.Executor, err = e.info.Marshal(); err != nil {
		return err
	}
	ck.ContainerID, ck.Sandbox, ck.Pid, ck.Command = e.containerID, e.sandbox, e.pid, e.command
	for _, t := range fw.tasks {
		if t.execID != e.info.ExecutorID.Value {
			continue
		}
		tc := taskCheckpoint{State: int32(t.state)}
		if tc.Info, err = t.info.Marshal(); err != nil {
			return err
		}
		if t.latest != nil {
			tc.Latest, _ = t.latest.Marshal()
		}
		for _, p := range t.pending {
			s, _ := p.Status.Marshal()
			st, _ := p.Stored.Marshal()
			tc.Pending = append(tc.Pending, updateCheckpoint{Status: s, Stored: st, FromExecutor: p.FromExecutor})
		}
		ck.Tasks = append(ck.Tasks, tc)
	}
	// Queued tasks were launched by the master but not yet delivered.
	for _, q := range e.queued {
		if _, ok := fw.tasks[q.TaskID.Value]; !ok {
			b, _ := q.Marshal()
			ck.Tasks = append(ck.Tasks, taskCheckpoint{Info: b, State: int32(mesos.TASK_STAGING)})
		}
	}
	data, err := json.Marshal(ck)
	if err != nil {
		return err
	}
	p := a.checkpointPath(e)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeAtomic(p, data)
}

func (a *Agent) removeCheckpoint(e *agentExecutor) {
	delete(a.dirty, e)
	dir := filepath.Join(a.metaDir(), "frameworks", e.fwID, "executors", e.info.ExecutorID.Value)
	_ = os.RemoveAll(dir)
}

// recover reads the checkpoints of a previous incarnation: the agent id and
// every executor of a checkpointing framework. Executors still running get
// the re-registration timeout to subscribe again; gone ones have their
// tasks lost.
func (a *Agent) recover() error {
	id, err := os.ReadFile(filepath.Join(a.metaDir(), "agent_id"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the checkpointed agent id: %w", err)
	}
	a.id = strings.TrimSpace(string(id))
	files, _ := filepath.Glob(filepath.Join(a.metaDir(), "frameworks", "*", "executors", "*", "runs", "*", "executor.json"))
	for _, f := range files {
		if err := a.recoverExecutor(f); err != nil {
			a.log.Error("cannot recover an executor checkpoint; removing it", "path", f, "error", err)
			_ = os.RemoveAll(filepath.Dir(f))
		}
	}
	return nil
}

func (a *Agent) recoverExecutor(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var ck execCheckpoint
	if err := json.Unmarshal(data, &ck); err != nil {
		return err
	}
	var fi mesos.FrameworkInfo
	var ei mesos.ExecutorInfo
	if err := fi.Unmarshal(ck.Framework); err != nil {
		return err
	}
	if err := ei.Unmarshal(ck.Executor); err != nil {
		return err
	}
	if fi.ID == nil {
		return errors.New("framework info without id")
	}
	fwID := fi.ID.Value
	fw := a.frameworks[fwID]
	if fw == nil {
		fw = &agentFramework{info: fi, executors: map[string]*agentExecutor{}, tasks: map[string]*agentTask{}}
		a.frameworks[fwID] = fw
	}
	e := &agentExecutor{fwID: fwID, info: ei, containerID: ck.ContainerID, sandbox: ck.Sandbox, pid: ck.Pid,
		command: ck.Command, launched: map[string]bool{}, state: execRegistering, recovering: true}
	fw.executors[ei.ExecutorID.Value] = e
	a.files.attachSandbox(e.sandbox, fwID, ei.ExecutorID.Value)
	for _, tc := range ck.Tasks {
		var ti mesos.TaskInfo
		if err := ti.Unmarshal(tc.Info); err != nil {
			return err
		}
		t := &agentTask{info: ti, execID: ei.ExecutorID.Value, state: mesos.TaskState(tc.State)}
		if len(tc.Latest) > 0 {
			var l mesos.TaskStatus
			if l.Unmarshal(tc.Latest) == nil {
				t.latest = &l
			}
		}
		for _, p := range tc.Pending {
			var u pendingUpdate
			if u.Status.Unmarshal(p.Status) != nil || u.Stored.Unmarshal(p.Stored) != nil {
				continue
			}
			u.FromExecutor = p.FromExecutor
			t.pending = append(t.pending, u)
		}
		fw.tasks[ti.TaskID.Value] = t
		if !api.Terminal(t.state) {
			e.launched[ti.TaskID.Value] = true
		}
	}
	launcher := a.launcher
	if e.command {
		launcher = a.cmdLaunch
	}
	var proc Process
	if r, ok := launcher.(Recoverer); ok {
		proc, err = r.Recover(e.containerID, e.pid)
	} else {
		err = errors.New("the launcher cannot recover executors")
	}
	if err != nil {
		a.log.Warn("checkpointed executor is gone", "framework_id", fwID, "executor_id", ei.ExecutorID.Value, "error", err)
		e.state, e.timedOut = execTerminating, true
		e.timeoutWhy = mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT
		// Reported once the agent has registered, like an observed exit.
		a.box.Post(execTerminatedMsg{fwID: fwID, execID: ei.ExecutorID.Value, containerID: e.containerID, status: -1})
		return nil
	}
	e.proc = proc
	e.timeoutWhy = mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT
	e.timer = a.after(a.cfg.ExecutorReregistrationTimeout, execTimeout{fwID: fwID, execID: ei.ExecutorID.Value, containerID: e.containerID})
	a.watch(e)
	a.log.Info("recovered executor; waiting for it to re-subscribe", "framework_id", fwID, "executor_id", ei.ExecutorID.Value,
		"timeout", a.cfg.ExecutorReregistrationTimeout.String(), "at", time.Now().Add(a.cfg.ExecutorReregistrationTimeout).Format(time.RFC3339))
	return nil
}
