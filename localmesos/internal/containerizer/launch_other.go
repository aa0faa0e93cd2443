//go:build !linux

package containerizer

import (
	"errors"
	"os/exec"
)

// Command is only available on Linux.
func Command(Spec) (*exec.Cmd, error) { return nil, Supported() }

// Supported says why containers cannot run here.
func Supported() error {
	return errors.New("running executors in container images needs Linux (mount, pid and uts namespaces)")
}
