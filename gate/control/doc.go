// Package control holds the vocabulary shared by a Tiltai service, its executor
// and the scheduler: gate names and patterns, endpoints, the versioned link
// snapshot that says who each out-gate's peers are, the environment the
// executor sets for a service (TILTAI_*), and the control protocol spoken over
// the executor's local unix socket (line-delimited JSON). It exports both ends
// of that socket: Client, used by the gate library inside the service, and
// Server, used by the executor. It imports nothing of Tiltai's and no
// messaging library, so the executor and the scheduler can depend on it
// without pulling in the gate runtime. The protocol is specified in
// docs/control-protocol.md; this package is its reference implementation.
package control
