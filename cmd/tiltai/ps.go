package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

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
			"service: running over wanted, tasks launching or retiring, links acknowledged, failures.\n\n" +
			"Examples:\n" +
			"  tiltai ps\n" +
			"  tiltai ps --service encryptor\n" +
			"  tiltai ps --json | jq '.[] | select(.phase != \"running\")'",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "service", Usage: "only the tasks of `SERVICE`"},
			&cli.BoolFlag{Name: "json", Usage: "print the tasks as JSON (GET /v1/tasks), nothing else"},
		}, schedulerFlags()...),
		Action: ps,
	}
}

func ps(c *cli.Context) error {
	if _, err := args(c, 0, "[--service SERVICE]"); err != nil {
		return helpShown(err)
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	service := c.String("service")
	tasks, err := cl.Tasks(c.Context, service)
	if err != nil {
		return apiFail(c, api, "cannot list the tasks", err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(tasks)
	}
	st, err := cl.Status(c.Context)
	if err != nil {
		return apiFail(c, api, "cannot get the status", err)
	}
	now := time.Now()
	services := st.Services
	if service != "" {
		services = slices.DeleteFunc(slices.Clone(services), func(ss scheduler.ServiceStatus) bool { return ss.Name != service })
		if len(services) == 0 && len(tasks) == 0 {
			var names []string
			for _, ss := range st.Services {
				names = append(names, ss.Name)
			}
			return cli.Exit(fmt.Sprintf("%s: no service %q in spec version %d (services: %s)", c.Command.HelpName, service, st.SpecVersion, strings.Join(names, ", ")), exitFailed)
		}
	}
	w := c.App.Writer
	if len(tasks) == 0 {
		fmt.Fprintln(w, "no tasks")
	} else {
		writeTasks(w, tasks, now)
	}
	if len(services) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, ss := range services {
			fmt.Fprintf(tw, "%s\t%s\n", ss.Name, client.FormatService(ss, now))
		}
		tw.Flush()
	}
	if service == "" {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", t.ID, t.Service, phase, hostPorts(t),
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
