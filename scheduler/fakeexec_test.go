package scheduler

import "github.com/tiltai/tiltai/scheduler/internal/lightexec"

// lightExecutor is the in-process stand-in for the Tiltai executor
// (scheduler/internal/lightexec), shared with the client's test cluster.
type lightExecutor = lightexec.Executors

func newLightExecutor() *lightExecutor { return lightexec.New() }
