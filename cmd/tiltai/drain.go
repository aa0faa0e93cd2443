package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gogo/protobuf/types"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/scheduler/client"
)

func drainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "drain a Mesos agent (the master's DRAIN_AGENT): its tasks are killed and replaced elsewhere",
		ArgsUsage: "AGENT",
		Description: "Asks the leading Mesos master to drain AGENT (an agent ID or hostname). What happens:\n\n" +
			"  1. Mesos deactivates the agent (no new offers from it) and kills every task on it, each\n" +
			"     within its kill grace period, capped by --max_grace_period. Once every task has ended\n" +
			"     and its status update is acknowledged, the master reports the agent DRAINED.\n" +
			"  2. Tiltai's scheduler sees TASK_KILLING: the task leaves every link table at once, its\n" +
			"     executor drains its in-gates within the grace period, and a replacement starts on\n" +
			"     another agent (its service's constraints hold).\n" +
			"  3. The agent stays deactivated, drained or not, until you bring it back with\n" +
			"     tiltai reactivate AGENT (the master's REACTIVATE_AGENT). Tasks are not moved back.\n\n" +
			"With --wait the command follows both until the master reports the agent DRAINED and, when\n" +
			"the scheduler (--scheduler) answers, it has converged with no task left on the agent;\n" +
			"progress goes to stderr. --timeout bounds the wait (exit 5); Ctrl-C stops waiting (exit 130),\n" +
			"not the drain. For a planned window, prefer a maintenance schedule: tasks then move\n" +
			"replacement-first (docs/operations.md, Maintenance).\n\n" +
			"Examples:\n" +
			"  tiltai drain --master 127.0.0.1:5050 --wait 127.0.0.3\n" +
			"  MESOS_MASTER=zk://zk1:2181/mesos tiltai drain --max_grace_period 10s 7f3c…-S2\n" +
			"  tiltai reactivate --master 127.0.0.1:5050 127.0.0.3",
		Flags: append([]cli.Flag{
			masterFlag(),
			&cli.DurationFlag{Name: "max_grace_period", Usage: "cap every task's kill grace period at `D` (default: each task's own)"},
			&cli.BoolFlag{Name: "wait", Usage: "follow the drain until the agent is drained and the scheduler has replaced its tasks"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "with --wait: stop waiting after this long (exit 5; the drain goes on)"},
			&cli.DurationFlag{Name: "poll-interval", Value: client.DefaultPollInterval, Usage: "with --wait: how often to ask the master and the scheduler"},
		}, schedulerFlags()...),
		Action: drain,
	}
}

func reactivateCommand() *cli.Command {
	return &cli.Command{
		Name:      "reactivate",
		Usage:     "bring a drained or deactivated Mesos agent back (the master's REACTIVATE_AGENT)",
		ArgsUsage: "AGENT",
		Description: "Asks the leading Mesos master to reactivate AGENT (an agent ID or hostname) after\n" +
			"tiltai drain or a deactivation: it offers its resources again and the scheduler may place\n" +
			"new tasks there (tasks that moved away stay where they are).\n\n" +
			"Examples:\n" +
			"  tiltai reactivate --master 127.0.0.1:5050 127.0.0.3",
		Flags:  []cli.Flag{masterFlag()},
		Action: reactivate,
	}
}

// agentArg resolves the command's AGENT at the leading master.
func agentArg(c *cli.Context, usage string) (base string, a *mmaster.Response_GetAgents_Agent, err error) {
	as, err := args(c, 1, usage)
	if err != nil {
		return "", nil, err
	}
	if c.String("master") == "" {
		return "", nil, usageErr(c, "--master is required (or MESOS_MASTER): host:port, http(s)://host:port or zk://host:port/mesos")
	}
	name := c.Command.HelpName
	base, err = leader(c.Context, c.String("master"))
	if err != nil {
		return "", nil, cli.Exit(fmt.Sprintf("%s: cannot find the leading master: %v", name, err), exitUnreachable)
	}
	agents, err := masterAgents(c.Context, base)
	if err != nil {
		return "", nil, cli.Exit(fmt.Sprintf("%s: cannot list the agents of %s: %v", name, base, err), exitUnreachable)
	}
	a, err = findAgent(agents, as[0])
	if err != nil {
		return "", nil, cli.Exit(fmt.Sprintf("%s: %v", name, err), exitFailed)
	}
	return base, a, nil
}

func drain(c *cli.Context) error {
	start := time.Now()
	if g := c.Duration("max_grace_period"); g < 0 {
		return usageErr(c, "--max_grace_period %s: give 0 or more", g)
	}
	if c.Bool("wait") && (c.Duration("timeout") <= 0 || c.Duration("poll-interval") <= 0) {
		return usageErr(c, "--timeout and --poll-interval must be more than 0")
	}
	var api apiConfig
	if c.Bool("wait") {
		var err error
		if api, err = apiConfigFrom(c); err != nil {
			return err
		}
	}
	base, a, err := agentArg(c, "[--master MASTER] [--max_grace_period D] [--wait] AGENT")
	if err != nil {
		return err
	}
	name := c.Command.HelpName
	id := a.AgentInfo.GetID().GetValue()
	call := &mmaster.Call{Type: mmaster.Call_DRAIN_AGENT, DrainAgent: &mmaster.Call_DrainAgent{AgentID: mesos.AgentID{Value: id}}}
	if c.IsSet("max_grace_period") {
		g := c.Duration("max_grace_period")
		call.DrainAgent.MaxGracePeriod = &types.Duration{Seconds: int64(g / time.Second), Nanos: int32(g % time.Second)}
	}
	if err := operatorCall(c.Context, base, call, nil); err != nil {
		return cli.Exit(fmt.Sprintf("%s: cannot drain agent %s (%s): %v", name, id, a.AgentInfo.Hostname, err), exitFailed)
	}
	if !c.Bool("wait") {
		fmt.Fprintf(c.App.Writer, "draining agent %s (%s): its tasks are killed and replaced elsewhere; follow with tiltai ps --agents\n", id, a.AgentInfo.Hostname)
		return nil
	}
	return waitDrained(c, api, base, id, a.AgentInfo.Hostname, start)
}

func reactivate(c *cli.Context) error {
	base, a, err := agentArg(c, "[--master MASTER] AGENT")
	if err != nil {
		return err
	}
	id := a.AgentInfo.GetID().GetValue()
	call := &mmaster.Call{Type: mmaster.Call_REACTIVATE_AGENT, ReactivateAgent: &mmaster.Call_ReactivateAgent{AgentID: mesos.AgentID{Value: id}}}
	if err := operatorCall(c.Context, base, call, nil); err != nil {
		return cli.Exit(fmt.Sprintf("%s: cannot reactivate agent %s (%s): %v", c.Command.HelpName, id, a.AgentInfo.Hostname, err), exitFailed)
	}
	fmt.Fprintf(c.App.Writer, "agent %s (%s) reactivated: it offers its resources again\n", id, a.AgentInfo.Hostname)
	return nil
}

// drainView is one look at a drain: what the master says of the agent and,
// when the scheduler is followed, what it says of its tasks.
type drainView struct {
	MasterErr error  // the master could not be asked this time
	Found     bool   // the master still lists the agent
	State     string // agentState: draining, drained, active, deactivated, …

	Scheduler bool     // the scheduler is followed
	SchedErr  error    // it could not be asked this time
	Left      []string // its tasks still on the agent
	Converged bool
	Running   int    // its tasks running, over every service
	Wanted    int    // and asked for
	Waiting   string // why a replacement waits for an offer, if one does
}

type drainVerdict int

const (
	drainWaiting drainVerdict = iota
	drainDone
	drainFailed // it will not finish: the agent is no longer draining
)

// judgeDrain says whether the drain is over and describes where it is,
// in one line.
func judgeDrain(v drainView) (drainVerdict, string) {
	var master string
	mdone := false
	switch {
	case v.MasterErr != nil:
		master = fmt.Sprintf("master: cannot ask (%v), retrying", v.MasterErr)
	case !v.Found:
		master, mdone = "master: agent removed", true
	case v.State == "drained":
		master, mdone = "master: drained", true
	case v.State == "draining":
		master = "master: draining"
	default:
		return drainFailed, fmt.Sprintf("master: the agent is %s, no longer draining (reactivated?)", v.State)
	}
	if !v.Scheduler {
		if mdone {
			return drainDone, master
		}
		return drainWaiting, master
	}
	var sched string
	sdone := false
	switch {
	case v.SchedErr != nil:
		sched = fmt.Sprintf("scheduler: cannot ask (%v), retrying", v.SchedErr)
	case len(v.Left) > 0:
		ids := v.Left
		if len(ids) > 3 {
			ids = append(slices.Clone(ids[:3]), "…")
		}
		sched = fmt.Sprintf("scheduler: %d %s left on the agent (%s), %d/%d running", len(v.Left), plural(len(v.Left), "task", "tasks"), strings.Join(ids, ", "), v.Running, v.Wanted)
	case !v.Converged:
		sched = fmt.Sprintf("scheduler: replacing, %d/%d running", v.Running, v.Wanted)
		if v.Waiting != "" {
			sched += " (" + v.Waiting + ")"
		}
	default:
		sched, sdone = fmt.Sprintf("scheduler: converged, %d/%d running, none on the agent", v.Running, v.Wanted), true
	}
	line := master + "; " + sched
	if mdone && sdone {
		return drainDone, line
	}
	return drainWaiting, line
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// waitDrained follows a drain until judgeDrain says it is over, printing
// each new state to stderr.
func waitDrained(c *cli.Context, api apiConfig, base, id, host string, start time.Time) error {
	name, errw := c.Command.HelpName, c.App.ErrWriter
	timeout := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	cl, err := api.client()
	if err != nil {
		return usageErr(c, "--scheduler: %v", err)
	}
	// The scheduler is followed if it answers now: a drain is a Mesos
	// operation and may be run where no Tiltai scheduler is reachable.
	follow := true
	if _, err := cl.Status(ctx); err != nil {
		if c.Context.Err() != nil {
			return drainInterrupted(c, id, host, start)
		}
		follow = false
		fmt.Fprintf(errw, "%s: no scheduler answers at %s (%v): waiting for the master only\n", name, api.URL, err)
	}
	fmt.Fprintf(errw, "draining agent %s (%s); waiting until it is drained (timeout %s; Ctrl-C stops waiting, not the drain)\n", id, host, timeout)
	look := func() drainView {
		v := drainView{Scheduler: follow}
		if agents, err := masterAgents(ctx, base); err != nil {
			v.MasterErr = err
		} else if a, err := findAgent(agents, id); err == nil {
			v.Found, v.State = true, agentState(a)
		}
		if !follow {
			return v
		}
		st, err := cl.Status(ctx)
		if err != nil {
			v.SchedErr = err
			return v
		}
		v.Converged = st.Converged
		for _, ss := range st.Services {
			v.Running += ss.Running
			v.Wanted += ss.Wanted
			if ss.Waiting != nil && v.Waiting == "" {
				v.Waiting = ss.Name + " waits: " + ss.Waiting.Reason
			}
		}
		tasks, err := cl.Tasks(ctx, "")
		if err != nil {
			v.SchedErr = err
			return v
		}
		for _, t := range tasks {
			if t.AgentID == id {
				v.Left = append(v.Left, t.ID)
			}
		}
		return v
	}
	tick := time.NewTicker(c.Duration("poll-interval"))
	defer tick.Stop()
	last := ""
	for {
		verdict, line := judgeDrain(look())
		if line != last {
			fmt.Fprintf(errw, "[%s] %s\n", client.Elapsed(time.Since(start)), line)
			last = line
		}
		switch verdict {
		case drainDone:
			fmt.Fprintf(c.App.Writer, "agent %s (%s) drained in %s: %s\n  bring it back with tiltai reactivate %s\n", id, host, client.Elapsed(time.Since(start)), line, host)
			return nil
		case drainFailed:
			return cli.Exit(fmt.Sprintf("%s: agent %s (%s): %s", name, id, host, line), exitFailed)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if c.Context.Err() != nil {
				return drainInterrupted(c, id, host, start)
			}
			return cli.Exit(fmt.Sprintf("%s: gave up waiting after %s: %s\n  the agent goes on draining; follow it with tiltai ps --agents", name, timeout, last), exitTimeout)
		}
	}
}

func drainInterrupted(c *cli.Context, id, host string, start time.Time) error {
	return cli.Exit(fmt.Sprintf("%s: stopped waiting after %s; agent %s (%s) goes on draining (tiltai ps --agents; tiltai reactivate %s brings it back)",
		c.Command.HelpName, client.Elapsed(time.Since(start)), id, host, host), exitInterrupted)
}
