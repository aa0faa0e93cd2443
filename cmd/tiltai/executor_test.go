package main

import (
	"os"
	"strings"
	"testing"
)

// TestExecutorIncompleteEnvironment is docs/reliability.md B4 at the command:
// run outside a Mesos agent, `tiltai executor` names every missing variable
// in one error and exits 2.
func TestExecutorIncompleteEnvironment(t *testing.T) {
	for _, v := range os.Environ() {
		if k, _, _ := strings.Cut(v, "="); strings.HasPrefix(k, "MESOS_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("MESOS_CHECKPOINT", "1")
	t.Setenv("MESOS_RECOVERY_TIMEOUT", "15 minutes")
	code, out, errs := runCLI(t, "", "executor")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if n := strings.Count(errs, "\n"); n != 1 {
		t.Errorf("want one error line, got %d:\n%s", n, errs)
	}
	for _, want := range []string{
		"tiltai executor: incomplete Mesos executor environment",
		"missing MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, MESOS_DIRECTORY, MESOS_SANDBOX, MESOS_AGENT_ENDPOINT, MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD, MESOS_SUBSCRIPTION_BACKOFF_MAX",
		`MESOS_RECOVERY_TIMEOUT: "15 minutes" has unit " minutes"`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestExecutorBadFlags(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"MESOS_FRAMEWORK_ID": "fw", "MESOS_EXECUTOR_ID": "ex", "MESOS_DIRECTORY": dir, "MESOS_SANDBOX": dir,
		"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs", "MESOS_CHECKPOINT": "0",
	} {
		t.Setenv(k, v)
	}
	if code, _, errs := runCLI(t, "", "executor", "--log-format", "xml"); code != 2 || !strings.Contains(errs, `log format "xml": want text or json`) {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", "executor", "--status-interval", "0s"); code != 2 || !strings.Contains(errs, "--status-interval 0s is not in (0, 1h]") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
