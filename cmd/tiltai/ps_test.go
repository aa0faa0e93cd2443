package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

func TestPs(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{})
	now := time.Now()
	f.SetTasks([]scheduler.TaskInfo{
		{ID: "encryptor.2", Service: "encryptor", Phase: "running", Host: "10.0.0.7", Ports: map[string]uint32{"plaintext": 31002},
			Created: now.Add(-3 * time.Hour), Links: scheduler.LinkState{Version: 4, Sent: 4, Acked: 4},
			Gates: map[string]scheduler.GateCountersReport{"plaintext": {Pattern: "pull", Received: 1200}, "ciphertext": {Pattern: "push", Sent: 1190, Dropped: 2}}},
		{ID: "encryptor.3", Service: "encryptor", Phase: "launched", Host: "10.0.0.8", Ports: map[string]uint32{"plaintext": 31000},
			Created: now.Add(-5 * time.Second), Links: scheduler.LinkState{Version: 4}},
		{ID: "encryptor.1", Service: "encryptor", Phase: "running", Host: "10.0.0.7", Ports: map[string]uint32{"plaintext": 31001},
			Retiring: true, Outdated: true, Created: now.Add(-72 * time.Hour), Links: scheduler.LinkState{Version: 4, Sent: 4, Acked: 3}},
		{ID: "printer.4", Service: "printer", Phase: "pending", Created: now.Add(-90 * time.Second), Links: scheduler.LinkState{Version: 1}},
	})
	printer := svcStatus("printer", 1, 0, 0, 0)
	printer.Pending, printer.Converged = 1, false
	enc := svcStatus("encryptor", 2, 1, 1, 0)
	enc.Retiring = 1
	f.ScriptStatus(statusOf(4, enc, printer))

	code, out, errs := runCLI(t, "", "ps", "--scheduler", f.URL)
	want := `ID           SERVICE    PHASE                      HOST:PORTS      LINKS  SENT  RECV  DROPPED  AGE
encryptor.1  encryptor  running,retiring,outdated  10.0.0.7:31001  3/4    -     -     -        3d
encryptor.2  encryptor  running                    10.0.0.7:31002  4/4    1190  1200  2        3h
encryptor.3  encryptor  launched                   10.0.0.8:31000  0/4    -     -     -        5s
printer.4    printer    pending                    -               0/1    -     -     -        1m

encryptor  1/2 running, 1 launching, 1 retiring, links 1/1 acked
printer    0/1 running, 1 pending
spec version 4: converging
`
	if code != 0 || out != want || errs != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errs)
	}

	code, out, _ = runCLI(t, "", "ps", "--scheduler", f.URL, "--service", "printer")
	if code != 0 || strings.Contains(out, "encryptor") || !strings.Contains(out, "printer.4") || !strings.HasSuffix(out, "\nprinter  0/1 running, 1 pending\n") {
		t.Fatalf("--service: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "ps", "--scheduler", f.URL, "--json")
	var tasks []scheduler.TaskInfo
	if code != 0 || json.Unmarshal([]byte(out), &tasks) != nil || len(tasks) != 4 || tasks[1].Gates["ciphertext"].Sent != 1190 {
		t.Fatalf("--json: %d\n%s", code, out)
	}
	code, _, errs = runCLI(t, "", "ps", "--scheduler", f.URL, "--service", "nosuch")
	if code != 1 || !strings.Contains(errs, `tiltai ps: no service "nosuch" in spec version 4 (services: encryptor, printer)`) {
		t.Fatalf("unknown service: %d %s", code, errs)
	}

	// A fresh scheduler.
	g := newFake(t, clienttest.FakeConfig{})
	code, out, _ = runCLI(t, "", "ps", "--scheduler", g.URL)
	if code != 0 || out != "no tasks\nno spec submitted yet: tiltai links submit FILE\n" {
		t.Fatalf("empty: %d %q", code, out)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m", 47 * time.Hour: "47h", 49 * time.Hour: "2d",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
}
