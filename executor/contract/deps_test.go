package contract

import (
	"testing"

	"github.com/tiltai/tiltai/internal/depcheck"
)

// The contract links no runtime: the scheduler imports it for the message
// types and must not get the executor, HTTP or Mesos with them.
func TestNoRuntimeDeps(t *testing.T) {
	depcheck.NoDeps(t, "github.com/tiltai/tiltai/executor/contract",
		"github.com/tiltai/tiltai/executor", "github.com/tiltai/tiltai/executor/internal/...",
		"github.com/tiltai/tiltai/scheduler/...", "net/http/...", "github.com/mesos/mesos-go/...")
}
