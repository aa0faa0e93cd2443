package containerizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// initArg is the hidden first argument that makes this binary the
// container's init instead of itself (see init below).
const initArg = "__localmesos_container_init"

const initEnv = "LOCALMESOS_CONTAINER_SPEC"

// Command returns the command that starts spec in new mount, pid and uts
// namespaces: this binary, re-executed as the container's init, which
// mounts the container's filesystems, pivots into the rootfs and execs the
// process (so the process is pid 1 of its namespace and its exit status is
// the container's). The caller sets Stdout and Stderr and starts it.
func Command(spec Spec) (*exec.Cmd, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find this executable to re-execute it: %w", err)
	}
	cmd := exec.Command(self, initArg)
	cmd.Env = []string{initEnv + "=" + string(b)}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Setpgid:    true,
	}
	return cmd, nil
}

// Supported says why containers cannot run here, or nil.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("running executors in container images needs root (mount, pid and uts namespaces, pivot_root)")
	}
	return nil
}

func init() {
	if len(os.Args) < 2 || os.Args[1] != initArg {
		return
	}
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv(initEnv)), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to read the container spec: %v\n", err)
		os.Exit(1)
	}
	if err := containerInit(spec); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	os.Exit(1) // not reached: containerInit execs
}

// containerInit runs in the new namespaces. The mounts follow the
// launch_info Mesos' filesystem/linux isolator hands mesos-containerizer.
func containerInit(s Spec) error {
	root := s.Rootfs
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return failure("Failed to mark '/' as rslave: %w", err)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return failure("Failed to bind mount the rootfs '%s': %w", root, err)
	}
	m := mounter{root: root}
	// /proc, with the read-only and masked parts of Mesos' list.
	m.mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "", dirTarget)
	for _, p := range []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"} {
		// Mesos mounts these unconditionally and fails where the kernel
		// has no /proc/sysrq-trigger; here a missing one is skipped.
		if m.exists(p) {
			m.bindReadOnly(m.path(p), p)
		}
	}
	for _, p := range []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/key-users",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats"} {
		m.mask(p)
	}
	m.mount("sysfs", "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "", dirTarget)
	m.mask("/sys/firmware")
	// A minimal /dev.
	m.mount("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_STRICTATIME, "mode=755", dirTarget)
	m.mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", dirTarget)
	m.mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=1777", dirTarget)
	for _, d := range []string{"full", "null", "random", "tty", "urandom", "zero"} {
		m.mount("/dev/"+d, "/dev/"+d, "", unix.MS_BIND, "", fileTarget)
	}
	for link, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		if m.err == nil {
			if err := os.Symlink(target, filepath.Join(root, "dev", link)); err != nil {
				m.err = failure("Failed to create /dev/%s: %w", link, err)
			}
		}
	}
	m.mount(s.Sandbox, SandboxPath, "", unix.MS_BIND|unix.MS_REC, "", dirTarget)
	for _, v := range s.Volumes {
		target := v.ContainerPath
		if !path.IsAbs(target) {
			target = path.Join(SandboxPath, target)
		}
		kind := dirTarget
		if fi, err := os.Stat(v.HostPath); err == nil && !fi.IsDir() {
			kind = fileTarget
		}
		if v.ReadOnly {
			m.bindReadOnlyKind(v.HostPath, target, kind)
		} else {
			m.mount(v.HostPath, target, "", unix.MS_BIND|unix.MS_REC, "", kind)
		}
	}
	// Host networking: the host's name resolution files, as Mesos' network
	// isolator gives a container with an image on the host network.
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
		if _, err := os.Stat(f); err == nil {
			m.mount(f, f, "", unix.MS_BIND, "", fileTarget)
		}
	}
	if m.err != nil {
		return failure("Failed to prepare mounts: %w", m.err)
	}
	if err := pivot(root); err != nil {
		return failure("Failed to enter chroot '%s': %w", root, err)
	}
	dir := s.Dir
	if dir == "" {
		dir = SandboxPath
	}
	if err := os.Chdir(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return failure("Failed to change working directory to '%s': %w", dir, err)
		}
		if err := os.Chdir(dir); err != nil {
			return failure("Failed to change working directory to '%s': %w", dir, err)
		}
	}
	os.Clearenv()
	for _, e := range s.Env {
		if k, v, ok := strings.Cut(e, "="); ok {
			_ = os.Setenv(k, v)
		}
	}
	exe := s.Path
	if !strings.Contains(exe, "/") {
		p, err := exec.LookPath(exe)
		if err != nil {
			return failure("Failed to execute command: %w", err)
		}
		exe = p
	}
	err := syscall.Exec(exe, s.Args, s.Env)
	return failure("Failed to execute '%s': %w", exe, err)
}

// pivot makes root the root of this mount namespace and detaches the old
// one ("pivot_root(".", ".")", as runc does), or chroots where the
// filesystem refuses pivot_root (an initramfs root).
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		if err := unix.Chroot("."); err != nil {
			return err
		}
		return unix.Chdir("/")
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return err
	}
	return unix.Chdir("/")
}

type targetKind int

const (
	dirTarget targetKind = iota
	fileTarget
)

// mounter mounts into the rootfs, keeping the first error. Every target
// is resolved inside the rootfs (inRoot), so an image's symlink such as
// /etc -> /host/etc cannot send a mount or a mkdir out of it.
type mounter struct {
	root string
	err  error
}

func (m *mounter) path(p string) string { return inRoot(m.root, p) }

func (m *mounter) exists(p string) bool {
	_, err := os.Lstat(m.path(p))
	return err == nil
}

func (m *mounter) target(p string, kind targetKind) (string, error) {
	t := m.path(p)
	if kind == dirTarget {
		return t, os.MkdirAll(t, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
		return "", err
	}
	if _, err := os.Lstat(t); err == nil {
		return t, nil
	}
	f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return "", err
	}
	return t, f.Close()
}

func (m *mounter) mount(source, p, fstype string, flags uintptr, data string, kind targetKind) {
	if m.err != nil {
		return
	}
	t, err := m.target(p, kind)
	if err != nil {
		m.err = failure("Failed to create mount target '%s': %w", filepath.Join(m.root, p), err)
		return
	}
	if err := unix.Mount(source, t, fstype, flags, data); err != nil {
		m.err = failure("Failed to mount '%s' at '%s': %w", source, t, err)
	}
}

func (m *mounter) bindReadOnly(source, p string) {
	kind := dirTarget
	if fi, err := os.Stat(source); err == nil && !fi.IsDir() {
		kind = fileTarget
	}
	m.bindReadOnlyKind(source, p, kind)
}

func (m *mounter) bindReadOnlyKind(source, p string, kind targetKind) {
	m.mount(source, p, "", unix.MS_BIND|unix.MS_REC, "", kind)
	if m.err == nil {
		t := m.path(p)
		if err := unix.Mount("", t, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			m.err = failure("Failed to remount '%s' read-only: %w", t, err)
		}
	}
}

// mask hides a path of /proc or /sys: /dev/null over a file, an empty
// read-only tmpfs over a directory.
func (m *mounter) mask(p string) {
	if m.err != nil {
		return
	}
	t := m.path(p)
	fi, err := os.Stat(t)
	if err != nil {
		return
	}
	if fi.IsDir() {
		m.mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "", dirTarget)
	} else {
		m.mount("/dev/null", p, "", unix.MS_BIND, "", fileTarget)
	}
}

// inRoot resolves p as the container will see it once root is its /:
// symlinks are followed, but an absolute target or a `..` never climbs
// above root. Missing components are kept as they are.
func inRoot(root, p string) string {
	var parts []string // resolved, each a real entry (or missing)
	rest := strings.Split(p, "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
			continue
		}
		host := filepath.Join(root, filepath.Join(parts...), c)
		fi, err := os.Lstat(host)
		if err == nil && fi.Mode()&os.ModeSymlink != 0 && hops < 40 {
			hops++
			t, err := os.Readlink(host)
			if err == nil {
				if path.IsAbs(t) {
					parts = parts[:0]
				}
				rest = append(strings.Split(t, "/"), rest...)
				continue
			}
		}
		parts = append(parts, c)
	}
	return filepath.Join(root, filepath.Join(parts...))
}
