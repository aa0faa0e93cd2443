package api

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// UnsupportedContainer is the master's refusal of the ContainerInfo parts
// localmesos does not implement ("" if it can run it).
func UnsupportedContainer(c *mesos.ContainerInfo) string {
	if c == nil {
		return ""
	}
	switch {
	case c.GetType() != mesos.ContainerInfo_MESOS:
		return "ContainerInfo type DOCKER (the Docker containerizer) is not implemented by localmesos"
	case len(c.NetworkInfos) > 0, c.Hostname != nil, c.LinuxInfo != nil, c.RlimitInfo != nil, c.TTYInfo != nil, c.Docker != nil:
		return "ContainerInfo networks, hostname, linux_info, rlimits and tty are not implemented by localmesos"
	}
	for _, v := range c.Volumes {
		if v.Source != nil || v.Image != nil || v.HostPath == nil {
			return "Only host_path volumes are implemented by localmesos"
		}
	}
	return ""
}

// NowSeconds is the time now in seconds, as TaskStatus.timestamp.
func NowSeconds() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// StripAllocation drops allocation_info and the deprecated role from
// resources.
func StripAllocation(rs []mesos.Resource) []mesos.Resource {
	out := make([]mesos.Resource, len(rs))
	for i, r := range rs {
		r.AllocationInfo = nil
		r.Role = nil
		out[i] = r
	}
	return out
}

// Terminal reports whether a task state is final.
func Terminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}
