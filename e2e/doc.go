// Package e2e holds the end-to-end tests of the whole system, run with real
// processes on loopback: the embedded Mesos (localmesos, in the test process,
// launching executors as processes), the tiltai scheduler as a process built
// from this module, the tiltai executor fetched from it by every task, and the
// demo services (feeder → encryptor ×N → printer) exchanging sequence-numbered
// messages through their gates. Loss is counted by the printer from the
// sequence numbers, never inferred. The tests cover docs/reliability.md F1, F2,
// F10 and F15; the benchmarks measure link propagation and the loss of a
// scale cycle. docs/testing.md says how to run them and what they measured.
//
// The package has no code of its own: everything is in its tests.
package e2e
