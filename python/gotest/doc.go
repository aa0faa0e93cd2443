// Package gotest holds the Go side of the Python gates' interop tests: the
// gopeer program (a Go gate of any pattern, driven by the Python tests in
// python/tests) and Go tests that run the Python package against Go gates.
package gotest
