package containerizer

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImageEnv is the image's ENV as "NAME=value" lines; lines without '=' are
// skipped, as the docker/runtime isolator does.
func ImageEnv(c v1.Config) []string {
	out := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		if strings.IndexByte(e, '=') > 0 {
			out = append(out, e)
		}
	}
	return out
}

// LaunchCommand merges a CommandInfo (shell, value, arguments) with the
// image's ENTRYPOINT and CMD by the docker/runtime isolator's table: a shell
// command or one with a value ignores them; otherwise ENTRYPOINT is the
// executable and CMD its default arguments (replaced by the given
// arguments), or CMD alone. It returns the executable and argv.
func LaunchCommand(c v1.Config, shell bool, value string, hasValue bool, args []string) (string, []string, error) {
	if shell {
		if !hasValue {
			return "", nil, failure("Shell specified but no command value provided")
		}
		return "/bin/sh", []string{"sh", "-c", value}, nil
	}
	if hasValue {
		argv := args
		if len(argv) == 0 {
			argv = []string{value}
		}
		return value, argv, nil
	}
	switch {
	case len(c.Entrypoint) > 0:
		argv := append(append([]string(nil), c.Entrypoint...), args...)
		if len(args) == 0 {
			argv = append(argv, c.Cmd...)
		}
		return c.Entrypoint[0], argv, nil
	case len(c.Cmd) > 0:
		argv := append([]string{c.Cmd[0]}, args...)
		if len(args) == 0 {
			argv = append(argv, c.Cmd[1:]...)
		}
		return c.Cmd[0], argv, nil
	}
	return "", nil, failure("No executable is found")
}

// failure is an error whose text is Mesos' own: capitalised, as the agent
// puts it in a TASK_FAILED message.
func failure(format string, args ...any) error { return fmt.Errorf(format, args...) }
