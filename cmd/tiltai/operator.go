package main

// The Mesos master's operator API (POST /api/v1), for the commands that
// act on agents: drain, and ps --agents. Protobuf both ways, so the calls
// are mesos-go's types; a 307 from a non-leading master is followed.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/scheduler/detect"
	"github.com/tiltai/tiltai/scheduler/placement"
)

func masterFlag() cli.Flag {
	return &cli.StringFlag{Name: "master", EnvVars: []string{"MESOS_MASTER"},
		Usage: "Mesos master: `host:port`, http(s)://host:port, or zk://host:port[,…]/mesos"}
}

// leader finds the leading master's base URL.
func leader(ctx context.Context, master string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	d, err := detect.New(ctx, master, nil)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return d.Leader(ctx)
}

// operatorCall makes one operator call; resp may be nil for calls
// without a response.
func operatorCall(ctx context.Context, base string, call *mmaster.Call, resp *mmaster.Response) error {
	body, err := call.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/v1", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Accept", "application/x-protobuf")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the master answered %s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	if resp != nil {
		return resp.Unmarshal(b)
	}
	return nil
}

// masterAgents is GET_AGENTS.
func masterAgents(ctx context.Context, base string) ([]mmaster.Response_GetAgents_Agent, error) {
	var resp mmaster.Response
	if err := operatorCall(ctx, base, &mmaster.Call{Type: mmaster.Call_GET_AGENTS}, &resp); err != nil {
		return nil, err
	}
	if resp.GetAgents == nil {
		return nil, fmt.Errorf("the master's GET_AGENTS answer has no agents")
	}
	return resp.GetAgents.Agents, nil
}

// findAgent resolves an agent ID or hostname.
func findAgent(agents []mmaster.Response_GetAgents_Agent, name string) (*mmaster.Response_GetAgents_Agent, error) {
	var byHost []*mmaster.Response_GetAgents_Agent
	for i := range agents {
		a := &agents[i]
		if a.AgentInfo.ID != nil && a.AgentInfo.ID.Value == name {
			return a, nil
		}
		if a.AgentInfo.Hostname == name {
			byHost = append(byHost, a)
		}
	}
	switch len(byHost) {
	case 1:
		return byHost[0], nil
	case 0:
		var known []string
		for _, a := range agents {
			known = append(known, a.AgentInfo.GetID().GetValue()+" ("+a.AgentInfo.Hostname+")")
		}
		return nil, fmt.Errorf("no agent %q; the master knows %s", name, strings.Join(known, ", "))
	}
	return nil, fmt.Errorf("%d agents have the hostname %q: name one by its ID", len(byHost), name)
}

// agentState says in a word what the master says of an agent.
func agentState(a *mmaster.Response_GetAgents_Agent) string {
	if di := a.DrainInfo; di != nil {
		return strings.ToLower(di.State.String())
	}
	if a.GetDeactivated() {
		return "deactivated"
	}
	if !a.Active {
		return "inactive"
	}
	return "active"
}

// attributesText formats attributes as constraints read them.
func attributesText(attrs []mesos.Attribute) map[string]string {
	out := map[string]string{}
	for _, a := range attrs {
		if v, ok := placement.ValueString(a); ok {
			out[a.Name] = v
		}
	}
	return out
}
