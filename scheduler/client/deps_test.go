package client_test

import (
	"testing"

	"github.com/tiltai/tiltai/internal/depcheck"
)

// A program that only talks to the scheduler's API links none of the
// scheduler's runtime (its store, ZooKeeper, metrics, Mesos): the wire
// types live in the leaf scheduler/apitypes for this.
func TestNoRuntimeDeps(t *testing.T) {
	runtime := []string{
		"go.etcd.io/bbolt/...", "github.com/go-zookeeper/zk/...", "github.com/prometheus/...",
		"github.com/mesos/mesos-go/...", "github.com/tiltai/tiltai/scheduler",
	}
	depcheck.NoDeps(t, "github.com/tiltai/tiltai/scheduler/client", runtime...)
	depcheck.NoDeps(t, "github.com/tiltai/tiltai/scheduler/apitypes", append(runtime, "net/http")...)
}
