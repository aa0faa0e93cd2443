// Package artifacts serves the executor binary to Mesos agents: a private
// copy of the tiltai binary, named by its SHA-256 so that an agent fetches
// exactly the bytes the name promises, even if the file on disk is
// replaced while the scheduler runs. It also tells whether that binary can
// run in a container image (only a static one can).
package artifacts
