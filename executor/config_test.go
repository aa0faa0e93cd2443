package executor

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
)

func TestMesosDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"5secs", 5 * time.Second, ""},
		{"15mins", 15 * time.Minute, ""},
		{"2secs", 2 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1.5hrs", 90 * time.Minute, ""},
		{"10ns", 10, ""},
		{"3us", 3 * time.Microsecond, ""},
		{"1days", 24 * time.Hour, ""},
		{"2weeks", 14 * 24 * time.Hour, ""},
		{"0secs", 0, ""},
		{"5", 0, "unit"},
		{"5s", 0, "unit"},
		{"secs", 0, "not a Mesos duration"},
		{"-5secs", 0, "not a Mesos duration"},
		{"", 0, "not a Mesos duration"},
		{"1.2.3secs", 0, "not a number"},
		{"99999999999999999999weeks", 0, "out of range"},
		{"1e300weeks", 0, "unit"},
		{"99999999999999.5weeks", 0, "out of range"},
	} {
		got, err := ParseMesosDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMesosDuration(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMesosDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, d := range []time.Duration{5 * time.Second, 15 * time.Minute, 250 * time.Millisecond, 2 * time.Hour, 3 * 24 * time.Hour, 1} {
		s := FormatMesosDuration(d)
		if back, err := ParseMesosDuration(s); err != nil || back != d {
			t.Errorf("%v → %q → %v, %v", d, s, back, err)
		}
	}
}

func FuzzParseMesosDuration(f *testing.F) {
	for _, s := range []string{"5secs", "15mins", "1.5hrs", "0ns", "9223372036ns", "7.weeks"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseMesosDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("%q parsed to a negative %v", s, d)
		}
	})
}

// TestConfigFromEnv is docs/reliability.md B4: an incomplete environment gives
// one error listing every missing variable.
func TestConfigFromEnv(t *testing.T) {
	full := map[string]string{
		"MESOS_FRAMEWORK_ID": "fw-0000", "MESOS_EXECUTOR_ID": "enc.1.x", "MESOS_DIRECTORY": "/sb", "MESOS_SANDBOX": "/sb",
		"MESOS_AGENT_ENDPOINT": "127.0.0.1:5051", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs", "MESOS_CHECKPOINT": "1",
		"MESOS_RECOVERY_TIMEOUT": "15mins", "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs", "MESOS_SLAVE_ID": "S0",
		"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": "s3cret",
	}
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := ConfigFromEnv(get(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.FrameworkID != "fw-0000" || c.ExecutorID != "enc.1.x" || c.AgentEndpoint != "127.0.0.1:5051" || !c.Checkpoint ||
		c.RecoveryTimeout != 15*time.Minute || c.SubscriptionBackoffMax != 2*time.Second || c.ShutdownGracePeriod != 5*time.Second ||
		c.AuthToken != "s3cret" || c.AgentID != "S0" || c.Sandbox != "/sb" {
		t.Fatalf("config %+v", c)
	}
	if s := c.AuthToken.String(); s != "<redacted>" {
		t.Fatalf("token prints as %q", s)
	}

	_, err = ConfigFromEnv(get(map[string]string{"MESOS_CHECKPOINT": "1"}))
	var ee *EnvError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v is not an EnvError", err)
	}
	msg := err.Error()
	for _, v := range []string{"MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID", "MESOS_DIRECTORY", "MESOS_SANDBOX", "MESOS_AGENT_ENDPOINT",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX"} {
		if !strings.Contains(msg, v) {
			t.Errorf("error does not list %s: %s", v, msg)
		}
	}
	if strings.Count(msg, "missing") != 1 {
		t.Errorf("want one error with one list: %s", msg)
	}

	bad := map[string]string{}
	for k, v := range full {
		bad[k] = v
	}
	bad["MESOS_CHECKPOINT"] = "maybe"
	bad["MESOS_RECOVERY_TIMEOUT"] = "15m"
	bad["MESOS_AGENT_ENDPOINT"] = "nohost"
	delete(bad, "MESOS_EXECUTOR_ID")
	_, err = ConfigFromEnv(get(bad))
	for _, w := range []string{"missing MESOS_EXECUTOR_ID", "MESOS_CHECKPOINT", "MESOS_RECOVERY_TIMEOUT", "MESOS_AGENT_ENDPOINT"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}

	// Without checkpointing the recovery variables are optional.
	nocp := map[string]string{}
	for k, v := range full {
		nocp[k] = v
	}
	nocp["MESOS_CHECKPOINT"] = "0"
	delete(nocp, "MESOS_RECOVERY_TIMEOUT")
	delete(nocp, "MESOS_SUBSCRIPTION_BACKOFF_MAX")
	if c, err := ConfigFromEnv(get(nocp)); err != nil || c.Checkpoint {
		t.Fatalf("without checkpointing: %+v, %v", c, err)
	}
}

func TestServiceEnv(t *testing.T) {
	d := contract.TaskData{
		Service: "encryptor", Command: "tiltai", Env: map[string]string{"K": "V", "PATH": "/opt/bin"},
		Gates: []contract.Gate{{Name: "plaintext", Pattern: control.Pull, Port: 31001}, {Name: "ciphertext", Pattern: control.Push}},
	}
	base := []string{"HOME=/root", "PATH=/usr/bin", "MESOS_EXECUTOR_AUTHENTICATION_TOKEN=s3cret", "TILTAI_CONTROL=unix:///old", "TILTAI_GATE_OLD=pull@tcp://0.0.0.0:1", "TILTAI_TLS_CA=/ca.pem", "MESOS_SANDBOX=/sb", "K=old"}
	env := serviceEnv(base, d, "encryptor.3", "unix:///sb/.tiltai/control.sock", "/sb/.tiltai/bin")
	want := []string{
		"HOME=/root", "K=V", "MESOS_SANDBOX=/sb", "PATH=/sb/.tiltai/bin:/opt/bin",
		"TILTAI_CONTROL=unix:///sb/.tiltai/control.sock", "TILTAI_GATE_CIPHERTEXT=push>", "TILTAI_GATE_PLAINTEXT=pull@tcp://0.0.0.0:31001",
		"TILTAI_SERVICE=encryptor", "TILTAI_TASK_ID=encryptor.3", "TILTAI_TLS_CA=/ca.pem",
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env\n%q\nwant\n%q", env, want)
	}
}
