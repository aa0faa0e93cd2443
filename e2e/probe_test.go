package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tiltai/tiltai/gate"
)

// The test binary doubles as a service where the demo services lack what a
// measurement needs: with E2E_PROBE set (in the spec's env) TestMain runs the
// role instead of the tests.
const (
	probeRoleEnv = "E2E_PROBE"     // the role: "consumer"
	probeOutEnv  = "E2E_PROBE_OUT" // where a consumer writes its report
)

// probeReport is what a consumer writes to E2E_PROBE_OUT/<task id>.json.
type probeReport struct {
	TaskID string    `json:"task_id"`
	Bound  time.Time `json:"bound"` // its in-gate bound (it is ready; TASK_RUNNING follows)
	First  time.Time `json:"first"` // its first message arrived
	Origin string    `json:"origin"`
}

func probeMain(role string) int {
	switch role {
	case "consumer":
		if err := probeConsumer(); err != nil {
			fmt.Fprintf(os.Stderr, "probe consumer: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown %s role %q\n", probeRoleEnv, role)
	return 2
}

// probeConsumer binds its pull in-gate "plaintext", notes when the first
// message arrives, reports both instants, and receives until drained.
func probeConsumer() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hub, err := gate.FromEnv(ctx, log, gate.Options{})
	if err != nil {
		return err
	}
	defer hub.Close()
	in, err := hub.In("plaintext")
	if err != nil {
		return err
	}
	rep := probeReport{TaskID: os.Getenv("TILTAI_TASK_ID"), Bound: time.Now()}
	m, err := in.Recv(ctx)
	if err != nil {
		return err
	}
	rep.First = time.Now()
	if len(m) > 0 {
		rep.Origin = string(m[0])
	}
	if err := writeReport(os.Getenv(probeOutEnv), rep); err != nil {
		return err
	}
	var n int64 = 1
	for {
		if _, err := in.Recv(ctx); err != nil {
			if errors.Is(err, gate.ErrDrained) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		n++
		hub.SetCounter("probe.received", n)
	}
}

// writeReport writes the report atomically: the test reads it as soon as it
// exists.
func writeReport(dir string, rep probeReport) error {
	if dir == "" || rep.TaskID == "" {
		return fmt.Errorf("%s or TILTAI_TASK_ID is not set", probeOutEnv)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+rep.TaskID+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, rep.TaskID+".json"))
}
