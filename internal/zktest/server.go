package zktest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Where Debian's packages put ZooKeeper. zookeeper.jar's manifest carries a
// Class-Path with every jar it needs, so it alone is the class path; the slf4j
// binding makes the server log to stderr, which we keep in a file.
const (
	debianZooKeeperJar = "/usr/share/java/zookeeper.jar"
	debianSLF4JSimple  = "/usr/share/java/slf4j-simple.jar"
	mainClass          = "org.apache.zookeeper.server.ZooKeeperServerMain"
)

// TickTime is the server's tick. Sessions time out in whole ticks and the
// server checks for expired sessions once a tick, so a short tick lets tests use
// session timeouts of a second or two and still see expiry promptly.
const TickTime = 100 * time.Millisecond

// startTimeout bounds how long a JVM may take to serve its first request on a
// loaded 2-core machine (a quiet one takes about half a second).
const startTimeout = 60 * time.Second

// Server is one real ZooKeeper server process. Its methods are safe to call
// from the test goroutine and from cleanup; they are not meant to race with
// each other.
type Server struct {
	tb      testing.TB
	java    string
	dir     string // data dir, config and log live under it
	port    int
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	started time.Duration
}

// Start runs a ZooKeeper server for the rest of the test (it is killed in
// t.Cleanup) and returns once it serves requests. It fails the test, saying
// what to install, when ZooKeeper or java is missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	java, err := findJava()
	if err != nil {
		tb.Fatalf("zktest: %v", err)
	}
	s := &Server{tb: tb, java: java, dir: tb.TempDir()}
	// A port picked from :0 can be taken again by someone else before the
	// JVM binds it; try a few.
	var lastErr error
	for range 3 {
		s.port, err = freePort()
		if err != nil {
			tb.Fatalf("zktest: cannot pick a free loopback port: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("zktest: %v", lastErr)
	}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			s.dumpLog()
		}
	})
	tb.Logf("zktest: ZooKeeper on %s ready in %v", s.Addr(), s.started.Round(time.Millisecond))
	return s
}

// Addr is the server's client address, "127.0.0.1:port".
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL is a zk:// URL for this server with the given chroot path ("/tiltai").
func (s *Server) URL(chroot string) string { return "zk://" + s.Addr() + chroot }

// StartupTime is how long the last (re)start took from exec to the first
// answered request.
func (s *Server) StartupTime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown) and waits for
// the process to exit. Sessions survive in the data directory, as they do on a
// real crash; a later Restart brings them back. Stop on a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts a stopped server again on the same port and data directory
// and waits until it serves requests.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.tb.Fatalf("zktest: Restart of a running server on %s; call Stop first", s.Addr())
	}
	if err := s.start(); err != nil {
		s.tb.Fatalf("zktest: %v", err)
	}
	s.tb.Logf("zktest: ZooKeeper on %s restarted in %v", s.Addr(), s.StartupTime().Round(time.Millisecond))
}

func (s *Server) start() error {
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("cannot create data dir: %w", err)
	}
	cfg := filepath.Join(s.dir, "zoo.cfg")
	conf := strings.Join([]string{
		fmt.Sprintf("tickTime=%d", TickTime.Milliseconds()),
		"dataDir=" + data,
		fmt.Sprintf("clientPort=%d", s.port),
		"clientPortAddress=127.0.0.1",
		// The admin server would take port 8080 by default; tests must not.
		"admin.enableServer=false",
		"4lw.commands.whitelist=ruok,srvr",
		fmt.Sprintf("minSessionTimeout=%d", 2*TickTime.Milliseconds()),
		"maxSessionTimeout=60000",
		// Small preallocated transaction logs: tests write little.
		"preAllocSize=1024",
		"maxClientCnxns=0",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("cannot write zoo.cfg: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the server log: %w", err)
	}
	defer logf.Close()

	cp := debianZooKeeperJar
	if _, err := os.Stat(debianSLF4JSimple); err == nil {
		cp += ":" + debianSLF4JSimple
	}
	cmd := exec.Command(s.java,
		// Quick start and a small footprint: one GC thread, C1 only, no
		// perf-data file; the heap is far above what tests store.
		"-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-XX:-UsePerfData", "-Xshare:auto",
		"-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.jmx.log4j.disable=true",
		// fsync buys nothing in a throw-away data dir and costs start time.
		"-Dzookeeper.forceSync=no",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-cp", cp, mainClass, cfg)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Kill the JVM if the test binary dies without running cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start ZooKeeper (%s): %w", s.java, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	if err := waitServing(s.Addr(), exited, startTimeout); err != nil {
		s.Stop()
		return fmt.Errorf("ZooKeeper on %s did not start: %w; its log:\n%s", s.Addr(), err, s.logTail(40))
	}
	s.mu.Lock()
	s.started = time.Since(begin)
	s.mu.Unlock()
	return nil
}

// waitServing polls the four-letter word "srvr", which (unlike "ruok") only
// answers with a Mode line once the server is actually serving.
func waitServing(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if out, err := FourLetterWord(addr, "srvr"); err == nil && strings.Contains(out, "Mode: standalone") {
			return nil
		}
		select {
		case <-exited:
			return errors.New("the java process exited")
		case <-poll.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %v", timeout)
		}
	}
}

// FourLetterWord sends one of ZooKeeper's four-letter commands and returns the
// answer.
func FourLetterWord(addr, word string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(word)); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(c)
	return buf.String(), err
}

func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.dir, "zookeeper.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Server) dumpLog() {
	s.tb.Logf("zktest: last lines of the ZooKeeper log (%s):\n%s", s.Addr(), s.logTail(30))
}

func findJava() (string, error) {
	if _, err := os.Stat(debianZooKeeperJar); err != nil {
		return "", fmt.Errorf("ZooKeeper is not installed (%s is missing): run scripts/test, which installs "+
			"Debian's zookeeper package, or apt-get install zookeeper", debianZooKeeperJar)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", errors.New("java is not on PATH: run scripts/test, which installs Debian's zookeeper " +
			"package (it pulls in default-jre), or apt-get install zookeeper")
	}
	return java, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
