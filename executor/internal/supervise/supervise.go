package supervise

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Spec says what to run.
type Spec struct {
	// Path is the program: absolute, or relative to Dir (see LookPath).
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the complete environment, KEY=value.
	Env []string
	// Dir is the working directory.
	Dir string
	// Stdout and Stderr are files the output is appended to (created 0644).
	Stdout, Stderr string
}

// Status is how a process ended.
type Status struct {
	// Code is the exit status (valid when Signal is 0).
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
}

// String describes the status: "exited with status 3", "was killed by
// signal 9 (killed)".
func (s Status) String() string {
	if s.Signal != 0 {
		return fmt.Sprintf("was killed by signal %d (%s)", int(s.Signal), s.Signal)
	}
	return fmt.Sprintf("exited with status %d", s.Code)
}

// Process is a started service process.
type Process struct {
	cmd    *exec.Cmd
	pid    int
	done   chan struct{}
	status Status
	mu     sync.Mutex
	reaped bool
}

// Start starts spec in a new process group. The process also gets SIGKILL
// should the executor die first (PR_SET_PDEATHSIG), so a crashed executor does
// not leave its service behind.
func Start(spec Spec) (*Process, error) {
	stdout, err := openAppend(spec.Stdout)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := openAppend(spec.Stderr)
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	path := spec.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(spec.Dir, path)
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   append([]string{spec.Path}, spec.Args...),
		Env:    spec.Env,
		Dir:    spec.Dir,
		Stdout: stdout,
		Stderr: stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", spec.Path, err)
	}
	p := &Process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go p.wait()
	return p, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the service's output file: %w", err)
	}
	return f, nil
}

// wait waits for the leader to exit without reaping it, kills whatever is
// left of its group while the leader's pid (the group id) cannot be reused,
// then reaps it.
func (p *Process) wait() {
	defer close(p.done)
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil || !errors.Is(err, unix.EINTR) {
			break
		}
	}
	_ = unix.Kill(-p.pid, unix.SIGKILL)
	err := p.cmd.Wait()
	p.mu.Lock()
	p.reaped = true
	p.mu.Unlock()
	p.status = statusOf(p.cmd.ProcessState, err)
}

func statusOf(ps *os.ProcessState, err error) Status {
	if ps == nil {
		return Status{Code: -1}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Status{Signal: ws.Signal()}
	}
	return Status{Code: ps.ExitCode()}
}

// PID returns the process id (also its process group id).
func (p *Process) PID() int { return p.pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Status returns how the process ended; valid after Done.
func (p *Process) Status() Status {
	<-p.done
	return p.status
}

// Signal sends sig to the whole process group. Signalling a group that is
// already gone is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil // the pid may belong to someone else by now
	}
	if err := unix.Kill(-p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("cannot send %s to process group %d: %w", sig, p.pid, err)
	}
	return nil
}

// LookPath resolves the program file the way the service's PATH would: a
// name with a '/' is taken as is (relative to dir), any other is searched in
// the directories of pathEnv. It returns the path to run, which for a PATH
// match is absolute or relative to dir.
func LookPath(file, pathEnv, dir string) (string, error) {
	if file == "" {
		return "", errors.New("no program named")
	}
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("cannot run %s: %w", file, err)
		}
		return file, nil
	}
	var tried []string
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if executable(p) == nil {
			return p, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("cannot find %q in the service's PATH (%s); give an absolute path, or a path relative to the sandbox, or fetch it with the task's URIs", file, strings.Join(tried, ":"))
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return errors.New("is not executable")
	}
	return nil
}

// Tail returns the last non-empty line of the last limit bytes of the file at
// path ("" if none), for status messages.
func Tail(path string, limit int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, fi.Size()-int64(limit))
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\r\n\t "), []byte("\n"))
	last := strings.TrimSpace(string(lines[len(lines)-1]))
	if off > 0 && len(lines) == 1 {
		last = "…" + last
	}
	return strings.ToValidUTF8(last, "?")
}
