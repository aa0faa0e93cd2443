package agent

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/link"
)

// drain kills every task of the agent for DRAIN_AGENT: the kill policy is
// the task's, its grace period capped by the drain's max_grace_period (a
// task without one gets max_grace_period).
func (a *Agent) drain(x link.DrainAgent) {
	a.draining = true
	for fwID, fw := range a.frameworks {
		for _, t := range fw.tasks {
			if api.Terminal(t.state) {
				continue
			}
			policy := t.info.KillPolicy
			if x.MaxGrace != nil {
				if policy == nil || policy.GracePeriod == nil || time.Duration(policy.GracePeriod.Nanoseconds) > *x.MaxGrace {
					policy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(*x.MaxGrace)}}
				}
			}
			a.killTask(link.KillTask{FrameworkID: fwID, TaskID: t.info.TaskID.Value, Policy: policy})
		}
	}
}

// shutdown is Mesos' ShutdownMessage: every framework is shut down and
// the agent stops registering (a Mesos agent exits; RestartAgent starts a
// new one).
func (a *Agent) shutdown(x link.AgentShutdown) {
	a.log.Warn("agent asked to shut down by the master", "agent_id", a.id, "reason", x.Message)
	a.registered, a.refused = false, true
	for fwID := range a.frameworks {
		a.shutdownFramework(fwID)
	}
}
