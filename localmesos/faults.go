package localmesos

import "github.com/tiltai/tiltai/localmesos/internal/master"

// The fault injector acts on the master (package internal/master); these
// names keep it part of the cluster's API (Cluster.Faults).
type (
	// Faults injects failures into a running cluster, for tests. The zero
	// configuration injects nothing. All methods are safe for concurrent
	// use.
	Faults = master.Faults
	// MessageFaults applies to every framework message (scheduler MESSAGE
	// to an executor and executor MESSAGE to the scheduler), each decided
	// at random. Status updates are not affected: they are retried until
	// acknowledged.
	MessageFaults = master.MessageFaults
	// FaultCounts says what the injected faults did so far.
	FaultCounts = master.FaultCounts
)
