package conformance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
)

var masterFlag = flag.String("master", "", "base URL of a Mesos 1.11 master, e.g. http://127.0.0.1:5050; empty: an in-process localmesos")

// master is the base URL the checks run against.
var master string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	master = strings.TrimSuffix(*masterFlag, "/")
	if master == "" {
		dir, err := os.MkdirTemp("", "conformance")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		// Three agents (127.0.0.2-4), so the checks that take one away
		// for good leave one for the others.
		*destructiveFlag = true
		c, err := localmesos.New(ctx, localmesos.Config{Agents: 3, SplitPorts: true, WorkDir: dir,
			Resources: "cpus:4;mem:4096;disk:10000;ports:[31000-32000]", AllocationInterval: 100 * time.Millisecond})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cannot start localmesos:", err)
			return 1
		}
		defer c.Close()
		master = c.MasterURL()
	}
	return m.Run()
}
