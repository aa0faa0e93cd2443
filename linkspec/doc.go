// Package linkspec is the link-spec format and the pure planner.
//
// A link spec names services (what to run, how many, with which resources) and
// the gates each service opens, and links out-gates to in-gates. Parse reads a
// spec from YAML or JSON and reports every problem at once, each located at
// FILE:LINE:COL with what to do about it. Diff compares two specs; Graph draws
// one. The Planner turns a spec and the observed tasks into actions (launch,
// retire, kill) and every service's link table; it is a plain function of its
// inputs with time passed in: no IO, no logging, no goroutines. Drivers (the
// scheduler) do the IO. This package imports nothing else of Tiltai's.
package linkspec
