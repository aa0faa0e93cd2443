package core

import (
	"testing"

	"github.com/tiltai/tiltai/internal/depcheck"
)

// The core decides and does no I/O: it builds Mesos calls as data but
// links no transport, no HTTP, no store, no metrics registry and not the
// executor's runtime (only its contract).
func TestNoIODeps(t *testing.T) {
	depcheck.NoDeps(t, "github.com/tiltai/tiltai/scheduler/core",
		"net/http/...", "github.com/mesos/mesos-go/api/v1/lib/httpcli/...",
		"go.etcd.io/bbolt/...", "github.com/go-zookeeper/zk/...", "github.com/prometheus/...",
		"github.com/tiltai/tiltai/executor", "github.com/tiltai/tiltai/executor/internal/...")
}
