package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test leaves nothing running: event streams, waits, the fake and
// the real scheduler all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
