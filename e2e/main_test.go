package e2e

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every process the suite starts (schedulers, executors, services, probes)
// has this run's directory in its command line, executable path or working
// directory, which is how the leak checks find them.
var (
	runDir    string // this run's directory: binaries, then one directory per system
	tiltaiBin string // the tiltai binary built from this module
)

var keep = flag.Bool("e2e.keep", os.Getenv("TILTAI_E2E_KEEP") != "", "keep the run directory (logs, sandboxes) after the run")

func TestMain(m *testing.M) {
	// The test binary doubles as a service for the benchmarks (probe.go).
	if role := os.Getenv(probeRoleEnv); role != "" {
		os.Exit(probeMain(role))
	}
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	root := filepath.Join(os.TempDir(), "tiltai-e2e-runs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	reapStale(root)
	dir, err := os.MkdirTemp(root, "run-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	runDir = dir
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer func() {
		// Whatever happened, nothing we started may outlive the run.
		if leaks := killLeaks(dir); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: %d processes outlived the run (killed now):\n  %s\n", len(leaks), strings.Join(leaks, "\n  "))
			code = 1
		}
		if *keep {
			// Marked so that later runs leave it alone.
			os.WriteFile(filepath.Join(dir, "kept"), nil, 0o644)
			fmt.Fprintf(os.Stderr, "e2e: kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	start := time.Now()
	tiltaiBin = filepath.Join(dir, "tiltai")
	if out, err := buildTiltai(tiltaiBin); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot build the tiltai binary: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", tiltaiBin, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

// buildTiltai builds ./cmd/tiltai of this module, static (CGO_ENABLED=0),
// so that it runs as the executor in any image, one without a C library
// too. TILTAI_E2E_BUILDFLAGS adds flags (e.g. "-race", to run every process
// of the system race-checked); the race detector needs cgo, so then the
// binary is dynamic and the tests with images skip.
func buildTiltai(out string) ([]byte, error) {
	flags := strings.Fields(os.Getenv("TILTAI_E2E_BUILDFLAGS"))
	args := append(append([]string{"build", "-o", out}, flags...), "./cmd/tiltai")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the module root: this package is e2e/
	cmd.Env = os.Environ()
	if !slices.ContainsFunc(flags, func(f string) bool { return f == "-race" || f == "-msan" || f == "-asan" }) {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	return cmd.CombinedOutput()
}

// processIdentity is "pid starttime": a pid alone may be reused.
func processIdentity(pid int) string {
	return strconv.Itoa(pid) + " " + startTime(pid)
}

// startTime is field 22 of /proc/PID/stat (clock ticks since boot), "" if
// the process is gone.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// reapStale removes the directories of earlier runs whose test process is
// gone (killed by a timeout, say), killing first whatever they left running.
func reapStale(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "run-*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "kept")); err == nil {
			continue // kept with -e2e.keep: the user removes it
		}
		owner, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			// Being created this instant, or from an older layout: leave it
			// unless it is old.
			if fi, err := os.Stat(d); err != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		} else if f := strings.Fields(string(owner)); len(f) == 2 {
			if pid, err := strconv.Atoi(f[0]); err == nil && startTime(pid) == f[1] {
				continue // its run is still going
			}
		}
		if leaks := killLeaks(d); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: killed %d processes left by an earlier run in %s\n", len(leaks), d)
		}
		os.RemoveAll(d)
	}
}

// processesUnder lists the processes (other than this one) whose command
// line, executable or working directory lies under dir, as "pid: cmdline".
func processesUnder(dir string) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		base := "/proc/" + e.Name()
		raw, _ := os.ReadFile(base + "/cmdline")
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		exe, _ := os.Readlink(base + "/exe")
		cwd, _ := os.Readlink(base + "/cwd")
		if strings.Contains(cmdline, dir) || strings.HasPrefix(exe, dir) || strings.HasPrefix(cwd, dir) {
			if state := procState(pid); state == "Z" || state == "" {
				continue // a zombie holds nothing; its parent reaps it
			}
			out[pid] = fmt.Sprintf("%d: %s (exe %s, cwd %s)", pid, cmdline, exe, cwd)
		}
	}
	return out
}

func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// killLeaks SIGKILLs, by pid, every process under dir, waits (bounded) for
// them to go, and describes them.
func killLeaks(dir string) []string {
	procs := processesUnder(dir)
	var out []string
	for pid, desc := range procs {
		out = append(out, desc)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(processesUnder(dir)) > 0 && time.Now().Before(deadline) {
		<-time.After(20 * time.Millisecond)
	}
	return out
}

// waitNoProcessesUnder waits until no process lies under dir; it reports
// (and kills) the ones still there at the deadline.
func waitNoProcessesUnder(dir string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		if len(processesUnder(dir)) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return killLeaks(dir)
		}
		<-time.After(50 * time.Millisecond)
	}
}

var copyOnce struct {
	sync.Once
	path string
	err  error
}

// probeBinary is a copy of this test binary inside the run directory, to run
// as a service (see probe.go).
func probeBinary() (string, error) {
	copyOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			copyOnce.err = err
			return
		}
		dst := filepath.Join(runDir, "probe")
		copyOnce.path, copyOnce.err = dst, copyFile(self, dst)
	})
	return copyOnce.path, copyOnce.err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Close())
}
