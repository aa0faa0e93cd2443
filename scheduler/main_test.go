package scheduler

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every test leaves nothing running: Close of a scheduler (leader or
// standby), of its Mesos connection, store, API server and the embedded
// Mesos it ran on stops every goroutine they started. Idle keep-alive
// connections of the default HTTP client (the tests' own requests) are
// closed first; goroutines still unwinding get a moment.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines left running after the tests: %v\n", err)
				code = 1
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Exit(code)
}
