package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list the scheduler's tasks, their links and counters, and each service's progress",
		Description: "One row per task: its ID, service and phase (with retiring, outdated or orphan when so),\n" +
			"HOST:PORTS its in-gates bind, LINKS as the link-table version its executor acknowledged\n" +
			"over the service's current one, the messages its gates SENT, RECEIVED and DROPPED as the\n" +
			"executor last reported (- before the first report), and its AGE. Then one line per\n" +
			"service: running over wanted, tasks launching or retiring, links acknowledged, failures;\n" +
			"and a WAITING line for each service with tasks no offer could take, with the reason that\n" +
			"ruled out most offers (cpus, mem, ports, role, a constraint, agent draining, maintenance,\n" +
			"no offers). --agents lists the agents instead.\n" +
			"Tasks are listed in launch order, the first --limit of them unless --all.\n\n" +
			"Examples:\n" +
			"  tiltai ps\n" +
			"  tiltai ps --service encryptor --phase pending\n" +
			"  tiltai ps --all\n" +
			"  tiltai ps --agents --master 127.0.0.1:5050\n" +
			"  tiltai ps --json | jq '.[] | select(.phase != \"running\")'",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "service", Usage: "only the tasks of `SERVICE`"},
			&cli.StringFlag{Name: "phase", Usage: "only the tasks in `PHASE`: pending, launched, running, killing or unreachable"},
			&cli.IntFlag{Name: "limit", Value: scheduler.DefaultTaskLimit, Usage: fmt.Sprintf("show at most `N` tasks (1 to %d)", scheduler.MaxTaskLimit)},
			&cli.BoolFlag{Name: "all", Usage: "show every task (fetched page by page)"},
			&cli.BoolFlag{Name: "json", Usage: "print the tasks as JSON (GET /v1/tasks), nothing else; every task unless --limit"},
			&cli.BoolFlag{Name: "agents", Usage: "list the agents instead: hostname, state (maintenance, draining, deactivated), tasks, attributes; with --master, every agent the master knows"},
			masterFlag(),
		}, schedulerFlags()...),
		Action: ps,
	}
}

// psQuery reads ps's filters, and whether to fetch every page.
func psQuery(c *cli.Context) (q scheduler.TaskQuery, all bool, err error) {
	q = scheduler.TaskQuery{Service: c.String("service"), Phase: c.String("phase"), Limit: c.Int("limit")}
	if q.Phase != "" {
		if _, err := linkspec.ParsePhase(q.Phase); err != nil {
			return q, false, usageErr(c, "--phase %q: give pending, launched, running, killing or unreachable", q.Phase)
		}
	}
	if q.Limit < 1 || q.Limit > scheduler.MaxTaskLimit {
		return q, false, usageErr(c, "--limit %d: give 1 to %d, or --all", q.Limit, scheduler.MaxTaskLimit)
	}
	all = c.Bool("all") || (c.Bool("json") && !c.IsSet("limit"))
	if all {
		q.Limit = scheduler.MaxTaskLimit
	}
	return q, all, nil
}

// fetchTasks gets the first page of q, or every page.
func fetchTasks(c *cli.Context, cl *client.Client, q scheduler.TaskQuery, all bool) (client.TaskPage, error) {
	page, err := cl.TasksPage(c.Context, q)
	for all && err == nil && page.Next != "" {
		q.After = page.Next
		var more client.TaskPage
		if more, err = cl.TasksPage(c.Context, q); err == nil {
			page.Tasks, page.Next = append(page.Tasks, more.Tasks...), more.Next
		}
	}
	return page, err
}

func ps(c *cli.Context) error {
	if _, err := args(c, 0, "[--service SERVICE] [--phase PHASE] [--limit N | --all] | --agents"); err != nil {
		return err
	}
	if c.Bool("agents") {
		return psAgents(c)
	}
	q, all, err := psQuery(c)
	if err != nil {
		return err
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	page, err := fetchTasks(c, cl, q, all)
	if err != nil {
		return apiFail(c, api, "cannot list the tasks", err)
	}
	tasks := page.Tasks
	if c.Bool("json") {
		b, err := json.MarshalIndent(tasks, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s\n", termsafe.JSON(b))
		return err
	}
	st, err := cl.Status(c.Context)
	if err != nil {
		return apiFail(c, api, "cannot get the status", err)
	}
	now := time.Now()
	services := st.Services
	if q.Service != "" {
		services = slices.DeleteFunc(slices.Clone(services), func(ss scheduler.ServiceStatus) bool { return ss.Name != q.Service })
		if len(services) == 0 && len(tasks) == 0 {
			var names []string
			for _, ss := range st.Services {
				names = append(names, ss.Name)
			}
			return cli.Exit(fmt.Sprintf("%s: no service %q in spec version %d (services: %s)", c.Command.HelpName, q.Service, st.SpecVersion, strings.Join(names, ", ")), exitFailed)
		}
	}
	w := c.App.Writer
	switch {
	case len(tasks) == 0 && q.Phase != "":
		fmt.Fprintf(w, "no %s tasks\n", q.Phase)
	case len(tasks) == 0:
		fmt.Fprintln(w, "no tasks")
	default:
		writeTasks(w, tasks, now)
	}
	if page.Next != "" {
		total := "more"
		if page.Total >= 0 {
			total = strconv.Itoa(page.Total)
		}
		fmt.Fprintf(w, "showing the first %d of %s tasks: --all for every one, --service or --phase to narrow\n", len(tasks), total)
	}
	if len(services) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, ss := range services {
			fmt.Fprintf(tw, "%s\t%s\n", termsafe.String(ss.Name), client.FormatService(ss, now))
		}
		for _, ss := range services {
			if ss.Waiting != nil && ss.Pending > 0 {
				fmt.Fprintf(tw, "WAITING\t%s\t%s\n", termsafe.String(ss.Name), formatWaiting(ss.Waiting, now))
			}
		}
		tw.Flush()
	}
	if q.Service == "" {
		switch {
		case st.SpecVersion == 0:
			fmt.Fprintln(w, "no spec submitted yet: tiltai links submit FILE")
		case st.Converged:
			fmt.Fprintf(w, "spec version %d: converged\n", st.SpecVersion)
		case !st.Subscribed:
			fmt.Fprintf(w, "spec version %d: not converged; the scheduler is not subscribed to a Mesos master\n", st.SpecVersion)
		default:
			fmt.Fprintf(w, "spec version %d: converging\n", st.SpecVersion)
		}
	}
	return nil
}

func writeTasks(w io.Writer, tasks []scheduler.TaskInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSERVICE\tPHASE\tHOST:PORTS\tLINKS\tSENT\tRECV\tDROPPED\tAGE")
	for _, t := range tasks {
		phase := t.Phase
		for _, flag := range []struct {
			on   bool
			name string
		}{{t.Retiring, "retiring"}, {t.Outdated, "outdated"}, {t.Orphan, "orphan"}} {
			if flag.on {
				phase += "," + flag.name
			}
		}
		sent, recv, dropped := "-", "-", "-"
		if len(t.Gates) > 0 {
			var s, r, d uint64
			for _, g := range t.Gates {
				s, r, d = s+g.Sent, r+g.Received, d+g.Dropped
			}
			sent, recv, dropped = strconv.FormatUint(s, 10), strconv.FormatUint(r, 10), strconv.FormatUint(d, 10)
		}
		// Every field is the scheduler's (a task's host comes from Mesos):
		// shown escaped, so no field can move the cursor or break the row.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", termsafe.String(t.ID), termsafe.String(t.Service), termsafe.String(phase), termsafe.String(hostPorts(t)),
			t.Links.Acked, t.Links.Version, sent, recv, dropped, age(now.Sub(t.Created)))
	}
	tw.Flush()
}

// hostPorts renders "host:31000,31001", ports in gate-name order; "-" when
// the task has no host yet.
func hostPorts(t scheduler.TaskInfo) string {
	if t.Host == "" {
		return "-"
	}
	gates := make([]string, 0, len(t.Ports))
	for g := range t.Ports {
		gates = append(gates, g)
	}
	slices.Sort(gates)
	ports := make([]string, len(gates))
	for i, g := range gates {
		ports[i] = strconv.FormatUint(uint64(t.Ports[g]), 10)
	}
	if len(ports) == 0 {
		return t.Host
	}
	return t.Host + ":" + strings.Join(ports, ",")
}

// age renders a duration as kubectl does: 45s, 12m, 3h, 5d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// formatWaiting says why a service's tasks wait: "1 task: hostname:UNIQUE
// ruled out 3 offers (also mem: 1), for 2m".
func formatWaiting(w *scheduler.Waiting, now time.Time) string {
	tasks := "1 task"
	if w.Tasks != 1 {
		tasks = fmt.Sprintf("%d tasks", w.Tasks)
	}
	line := tasks + ": " + termsafe.String(w.Reason)
	if w.Reason != "no offers" {
		n := w.Reasons[w.Reason]
		line += fmt.Sprintf(" ruled out %d offer", n)
		if n != 1 {
			line += "s"
		}
	}
	var others []string
	for _, r := range slices.Sorted(maps.Keys(w.Reasons)) {
		if r != w.Reason {
			others = append(others, fmt.Sprintf("%s: %d", termsafe.String(r), w.Reasons[r]))
		}
	}
	if len(others) > 0 {
		line += " (also " + strings.Join(others, ", ") + ")"
	}
	if !w.Since.IsZero() {
		line += ", for " + age(now.Sub(w.Since))
	}
	return line
}

// psAgents lists agents: those the scheduler has seen (GET /v1/agents),
// and with --master every agent the master knows (GET_AGENTS), with its
// drain or deactivation state.
func psAgents(c *cli.Context) error {
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	seen, err := cl.Agents(c.Context)
	if err != nil {
		return apiFail(c, api, "cannot list the agents", err)
	}
	type row struct {
		id, host, state string
		tasks           int
		attrs           map[string]string
	}
	rows := map[string]*row{}
	for _, a := range seen {
		r := &row{id: a.ID, host: a.Hostname, tasks: a.Tasks, attrs: a.Attributes, state: "active"}
		switch {
		case a.Draining:
			r.state = "draining"
		case a.Maintenance:
			r.state = "maintenance: tasks moving"
		}
		if !a.Unavailable.IsZero() {
			r.state += ", unavailable from " + a.Unavailable.Local().Format(time.DateTime)
			if !a.Until.IsZero() {
				r.state += " to " + a.Until.Local().Format(time.DateTime)
			}
		}
		rows[a.ID] = r
	}
	if m := c.String("master"); m != "" {
		base, err := leader(c.Context, m)
		if err != nil {
			return cli.Exit(fmt.Sprintf("%s: cannot find the leading master: %v", c.Command.HelpName, err), exitUnreachable)
		}
		agents, err := masterAgents(c.Context, base)
		if err != nil {
			return cli.Exit(fmt.Sprintf("%s: cannot list the agents of %s: %v", c.Command.HelpName, base, err), exitUnreachable)
		}
		for i := range agents {
			a := &agents[i]
			id := a.AgentInfo.GetID().GetValue()
			r := rows[id]
			if r == nil {
				r = &row{id: id}
				rows[id] = r
			}
			r.host, r.attrs = a.AgentInfo.Hostname, attributesText(a.AgentInfo.Attributes)
			if st := agentState(a); st != "active" || r.state == "" {
				if r.state == "" || r.state == "active" {
					r.state = st
				} else {
					r.state = st + "; " + r.state
				}
			}
		}
	}
	w := c.App.Writer
	if len(rows) == 0 {
		fmt.Fprintln(w, "no agents seen yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tHOSTNAME\tTASKS\tSTATE\tATTRIBUTES")
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		r := rows[id]
		var attrs []string
		for _, k := range slices.Sorted(maps.Keys(r.attrs)) {
			attrs = append(attrs, k+":"+r.attrs[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", termsafe.String(r.id), termsafe.String(r.host), r.tasks, termsafe.String(r.state), termsafe.String(strings.Join(attrs, ",")))
	}
	return tw.Flush()
}
