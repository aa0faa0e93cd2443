package main

import (
	"fmt"
	"time"

	"github.com/gogo/protobuf/types"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/urfave/cli/v2"
)

func drainCommand() *cli.Command {
	return &cli.Command{
		Name:  "drain",
		Usage: "drain a Mesos agent (the master's DRAIN_AGENT): its tasks are killed and replaced elsewhere",
		Description: "Asks the leading Mesos master to drain AGENT (an agent ID or hostname): the agent is\n" +
			"deactivated (no new offers) and kills every task on it, each within its kill grace period,\n" +
			"capped by --max_grace_period. The Tiltai scheduler sees TASK_KILLING: the task leaves every\n" +
			"link table at once, its executor drains its in-gates, and a replacement starts on another\n" +
			"agent. The agent stays deactivated once drained, until reactivated (REACTIVATE_AGENT).\n" +
			"For a planned window, prefer a maintenance schedule: tasks then move replacement-first\n" +
			"(docs/operations.md, Maintenance).\n\n" +
			"Examples:\n" +
			"  tiltai drain --master 127.0.0.1:5050 127.0.0.3\n" +
			"  MESOS_MASTER=zk://zk1:2181/mesos tiltai drain --max_grace_period 10s 7f3c…-S2",
		Flags: []cli.Flag{
			masterFlag(),
			&cli.DurationFlag{Name: "max_grace_period", Usage: "cap every task's kill grace period at `D` (default: each task's own)"},
		},
		Action: drain,
	}
}

func drain(c *cli.Context) error {
	as, err := args(c, 1, "[--master MASTER] [--max_grace_period D] AGENT")
	if err != nil {
		return err
	}
	if c.String("master") == "" {
		return usageErr(c, "--master is required (or MESOS_MASTER): host:port, http(s)://host:port or zk://host:port/mesos")
	}
	if g := c.Duration("max_grace_period"); g < 0 {
		return usageErr(c, "--max_grace_period %s: give 0 or more", g)
	}
	name := c.Command.HelpName
	base, err := leader(c.Context, c.String("master"))
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: cannot find the leading master: %v", name, err), exitUnreachable)
	}
	agents, err := masterAgents(c.Context, base)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: cannot list the agents of %s: %v", name, base, err), exitUnreachable)
	}
	a, err := findAgent(agents, as[0])
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: %v", name, err), exitFailed)
	}
	id := a.AgentInfo.GetID().GetValue()
	call := &mmaster.Call{Type: mmaster.Call_DRAIN_AGENT, DrainAgent: &mmaster.Call_DrainAgent{AgentID: mesos.AgentID{Value: id}}}
	if c.IsSet("max_grace_period") {
		g := c.Duration("max_grace_period")
		call.DrainAgent.MaxGracePeriod = &types.Duration{Seconds: int64(g / time.Second), Nanos: int32(g % time.Second)}
	}
	if err := operatorCall(c.Context, base, call, nil); err != nil {
		return cli.Exit(fmt.Sprintf("%s: cannot drain agent %s (%s): %v", name, id, a.AgentInfo.Hostname, err), exitFailed)
	}
	fmt.Fprintf(c.App.Writer, "draining agent %s (%s): its tasks are killed and replaced elsewhere; follow with tiltai ps --agents\n", id, a.AgentInfo.Hostname)
	return nil
}
