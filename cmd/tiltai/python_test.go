package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPythonEnv: `tiltai python` installs the embedded package into the
// sandbox and puts it first on PYTHONPATH; the interpreter imports it from
// there and runs the demo module's code.
func TestPythonEnv(t *testing.T) {
	py := os.Getenv("TILTAI_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(py); err != nil {
		t.Skipf("no Python interpreter %s", py)
	}
	box := t.TempDir()
	path, env, err := pythonEnv([]string{"MESOS_SANDBOX=" + box, "PYTHON=" + py, "PYTHONPATH=/elsewhere", "PATH=" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(box, ".tiltai", "python")
	if !slices.Contains(env, "PYTHONPATH="+dir+":/elsewhere") {
		t.Errorf("environment %q: want PYTHONPATH=%s:/elsewhere", env, dir)
	}
	cmd := exec.Command(path, "-c", "import tiltai, tiltai.demo; print(tiltai.__file__)")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != filepath.Join(dir, "tiltai", "__init__.py") {
		t.Errorf("tiltai imported from %s, want the sandbox's copy", got)
	}
	// A second run finds it installed and changes nothing.
	if _, _, err := pythonEnv([]string{"MESOS_SANDBOX=" + box, "PYTHON=" + py}); err != nil {
		t.Fatal(err)
	}
}

// TestPythonHelp: `tiltai python --help` is tiltai's help for the command,
// not the interpreter's.
func TestPythonHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		code, out, errs := runCLI(t, "", "python", arg)
		if code != 0 || errs != "" {
			t.Fatalf("python %s: exit %d, stderr %s", arg, code, errs)
		}
		for _, want := range []string{"tiltai python [--] PYTHON-ARGUMENTS", "args: [python, -m, my.service]", "$MESOS_SANDBOX/.tiltai/python", "docs/gates.md"} {
			if !strings.Contains(out, want) {
				t.Errorf("python %s lacks %q:\n%s", arg, want, out)
			}
		}
	}
}

// TestPythonMissingInterpreter: without python3 the command says what is
// missing and what to do, and exits 1.
func TestPythonMissingInterpreter(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("PYTHON", "")
	t.Setenv("MESOS_SANDBOX", t.TempDir())
	code, out, errs := runCLI(t, "", "python", "-c", "pass")
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	for _, want := range []string{"tiltai python: cannot run python3", "install Python 3.11 or later, or set PYTHON"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q: %s", want, errs)
		}
	}

	t.Setenv("PYTHON", "/nonexistent/python3")
	if code, _, errs := runCLI(t, "", "python", "-c", "pass"); code != 1 || !strings.Contains(errs, "cannot run /nonexistent/python3") {
		t.Errorf("PYTHON=/nonexistent/python3: exit %d, stderr %s", code, errs)
	}
}

// TestPythonKeepsParentDeathSignal: the executor starts its service with a
// parent-death signal (SIGKILL), so that a killed executor leaves no service
// behind; the python3 that `tiltai python` becomes must keep it. Here the
// parent is a thread of this test, ended once python3 runs.
func TestPythonKeepsParentDeathSignal(t *testing.T) {
	py := os.Getenv("TILTAI_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(py); err != nil {
		t.Skipf("no Python interpreter %s", py)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := buildTiltai(ctx, t, t.TempDir())
	// The arguments after the program reach it as they are, flags included.
	cmd := exec.Command(bin, "python", "-c", "import sys, time; print('running', *sys.argv[1:], flush=True); time.sleep(60)", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "PYTHON="+py, "MESOS_SANDBOX="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	end := make(chan struct{})
	defer close(end)
	if err := onOwnThread(cmd.Start, end); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "running --log-level warn\n" {
		t.Fatalf("python3 said %q, want running --log-level warn", line)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	end <- struct{}{} // the parent thread ends
	select {
	case err := <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("python3 ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("python3 outlived the thread that started it: the parent-death signal was lost")
	}
}

// onOwnThread runs start on a thread that ends when end receives (or is
// closed). The runtime never ends the main thread, so a goroutine that lands
// there holds it until then, and another one tries.
func onOwnThread(start func() error, end <-chan struct{}) error {
	ended := make(chan struct{})
	onMain := errors.New("on the main thread")
	for {
		res := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // not unlocked: the thread ends with this goroutine
			if syscall.Gettid() == os.Getpid() {
				res <- onMain
				<-ended
				runtime.UnlockOSThread()
				return
			}
			res <- start()
			<-end
			close(ended)
		}()
		if err := <-res; err != onMain {
			return err
		}
	}
}
