// Package imagetest builds small Docker images for tests from the host's
// busybox-static, saves them as `docker save` tarballs and serves them from
// a real docker-registry (Debian packages busybox-static and
// docker-registry).
package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/legacy/tarball"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1tarball "github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Busybox is where busybox-static installs its binary.
const Busybox = "/bin/busybox"

// Entry is one member of a layer built by Layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg (default), TypeDir, TypeSymlink, TypeLink
	Body     string
	Linkname string
	Mode     int64
}

// Layer builds an uncompressed layer from entries, in order.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Linkname, Mode: e.Mode, Size: int64(len(e.Body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := v1tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// BusyboxLayer holds /bin/busybox with applet symlinks (sh, cat, env, ls,
// sleep, echo, test), and the directories Mesos mounts on.
func BusyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		t.Skipf("busybox-static is not installed (%v): apt-get install busybox-static", err)
	}
	entries := []Entry{{Name: "bin/", Type: tar.TypeDir}, {Name: "bin/busybox", Body: string(bb), Mode: 0o755}}
	for _, a := range []string{"sh", "cat", "env", "ls", "sleep", "echo", "test", "touch"} {
		entries = append(entries, Entry{Name: "bin/" + a, Type: tar.TypeSymlink, Linkname: "busybox"})
	}
	for _, d := range []string{"etc/", "tmp/", "proc/", "sys/", "dev/"} {
		entries = append(entries, Entry{Name: d, Type: tar.TypeDir})
	}
	return Layer(t, entries...)
}

// Image makes an image of the layers with the given runtime config.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", hostArch(), cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// SaveLegacy writes img to <dir>/<imageName>.tar in the legacy `docker
// save` layout that Mesos' local puller reads, tagged imageName.
func SaveLegacy(t testing.TB, dir, imageName string, img v1.Image) {
	t.Helper()
	p := filepath.Join(dir, imageName+".tar")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(imageName, name.WithDefaultRegistry(""))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tarball.Write(tag, img, f); err != nil {
		t.Fatal(err)
	}
}

// SaveManifestOnly writes img in the newer `docker save` layout only
// (manifest.json, no <layer id>/json), which Mesos' local puller refuses.
func SaveManifestOnly(t testing.TB, dir, imageName string, img v1.Image) {
	t.Helper()
	tag, err := name.NewTag(imageName, name.WithDefaultRegistry(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := v1tarball.WriteToFile(filepath.Join(dir, imageName+".tar"), tag, img); err != nil {
		t.Fatal(err)
	}
}

// Registry starts a docker-registry (Docker Registry v2) on a free
// loopback port, storing in a temporary directory, and returns its
// http:// URL. It is stopped at the end of the test.
func Registry(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed: apt-get install docker-registry")
	}
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		url := "http://" + addr
		if waitReady(url, exited) {
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
			return url
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 3 {
			t.Fatalf("docker-registry did not start: %s", logs.String())
		}
	}
}

// waitReady polls GET /v2/ until it answers, the process exits or 30 s pass.
func waitReady(url string, exited <-chan struct{}) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// Push pushes img to the registry at url as imageName.
func Push(t testing.TB, url, imageName string, img v1.Image) {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	ref, err := name.ParseReference(host+"/"+imageName, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

// StaticGoBinary builds a static Go program (CGO_ENABLED=0) from source
// and returns its path.
func StaticGoBinary(t testing.TB, source string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module marker\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build the static program: %v\n%s", err, b)
	}
	return out
}
