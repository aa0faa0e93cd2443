package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tiltai/tiltai/internal/elfstatic"
	"github.com/tiltai/tiltai/internal/imagetest"
	"github.com/tiltai/tiltai/localmesos"
)

// Services in container images, on localmesos running images for real
// (Linux, as root): the Tiltai executor is fetched into the sandbox and runs
// in the image with the service it starts.

// needImages skips unless images can run here: Linux, root, and a static
// tiltai (TILTAI_E2E_BUILDFLAGS=-race builds a dynamic one).
func needImages(t *testing.T) {
	t.Helper()
	switch {
	case runtime.GOOS != "linux":
		t.Skip("services in images need Linux (localmesos runs images with Linux namespaces)")
	case os.Geteuid() != 0:
		t.Skip("services in images need root (localmesos makes mount and pid namespaces); run the e2e tests as root")
	}
	if info, err := elfstatic.Inspect(tiltaiBin); err != nil || !info.Static() {
		t.Skipf("the tiltai under test is not static (%v %v), as with TILTAI_E2E_BUILDFLAGS=-race; images need CGO_ENABLED=0", info, err)
	}
}

// serviceImage is busybox and /usr/local/bin/SERVICE, a script that leaves
// proof of where it runs in the sandbox (the image's own file, its ENV,
// the working directory, the mount table) and then becomes `tiltai demo
// SERVICE` (tiltai is on PATH: the executor puts itself there).
func serviceImage(t *testing.T, service, version string) v1.Image {
	script := `#!/bin/sh
{ cat /etc/tiltai-image; echo "env=$IMAGE_ENV"; echo "pwd=$(pwd)"; } > "$MESOS_SANDBOX/image-proof"
cat /proc/self/mountinfo > "$MESOS_SANDBOX/mountinfo"
exec tiltai demo ` + service + ` "$@"
`
	layer := imagetest.Layer(t,
		imagetest.Entry{Name: "etc/", Type: tar.TypeDir},
		imagetest.Entry{Name: "etc/tiltai-image", Body: fmt.Sprintf("image=%s:%s\n", service, version)},
		imagetest.Entry{Name: "usr/", Type: tar.TypeDir},
		imagetest.Entry{Name: "usr/local/", Type: tar.TypeDir},
		imagetest.Entry{Name: "usr/local/bin/", Type: tar.TypeDir},
		imagetest.Entry{Name: "usr/local/bin/" + service, Body: script, Mode: 0o755},
		imagetest.Entry{Name: "srv/", Type: tar.TypeDir},
	)
	return imagetest.Image(t, v1.Config{
		Entrypoint: []string{"/usr/local/bin/" + service},
		Env:        []string{"PATH=/usr/local/bin:/bin", "IMAGE_ENV=" + service + "-" + version},
		WorkingDir: "/srv",
	}, imagetest.BusyboxLayer(t), layer)
}

// TestImagesPipeline runs the encryptor from an image in a directory
// registry (Mesos' local puller): the pipeline converges, each encryptor
// proves it ran in its image; scaling 3 → 10 → 1 and replacing the image by
// a new tag, under traffic, lose nothing; a missing image fails its task
// with Mesos' message.
func TestImagesPipeline(t *testing.T) {
	needImages(t)
	t.Parallel()
	registry := t.TempDir()
	imagetest.SaveLegacy(t, registry, "tiltai/encryptor:1", serviceImage(t, "encryptor", "1"))
	imagetest.SaveLegacy(t, registry, "tiltai/encryptor:2", serviceImage(t, "encryptor", "2"))
	imagetest.SaveLegacy(t, registry, "tiltai/printer:1", serviceImage(t, "printer", "1"))
	s := newSystemWith(t, systemOptions{Mesos: func(c *localmesos.Config) { c.ImageProviders, c.DockerRegistry = "docker", registry }})
	s.startScheduler()
	events := s.watchEvents()
	p := pipeline{Rate: 400, Encryptors: 3, EncryptorImage: "tiltai/encryptor:1", PrinterImage: "tiltai/printer:1"}
	s.converge(s.submit(p.spec()).Version, 2*time.Minute)
	feeder := s.running("feeder")[0]
	for _, e := range s.running("encryptor") {
		s.checkInImage(e.ID, "image=encryptor:1", "env=encryptor-1")
	}
	s.checkInImage(s.running("printer")[0].ID, "image=printer:1", "env=printer-1")

	s.waitEncryptors(s.scale("encryptor", 10), 10)
	s.waitEncryptors(s.scale("encryptor", 1), 1)
	// A new tag is a new image: the encryptor is replaced, new first.
	old := ids(s.running("encryptor"))
	p.Encryptors, p.EncryptorImage = 1, "tiltai/encryptor:2"
	s.waitEncryptors(s.submit(p.spec()), 1)
	now := s.running("encryptor")
	if contains(old, now[0].ID) {
		t.Errorf("encryptor %s survived the new image", now[0].ID)
	}
	s.checkInImage(now[0].ID, "image=encryptor:2", "env=encryptor-2")

	checkDrainedFirst(t, events, feeder.ID)
	rerouted := s.nextReport(feeder).Gates["plaintext"].Rerouted
	tl := s.stopFeeder()
	t.Logf("sent %d, received %d, duplicates %d, missing %d, lost %d; the feeder re-routed %d",
		tl.Sent, tl.Received, tl.Duplicates, tl.Missing, tl.Lost, rerouted)
	if tl.Sent == 0 || tl.Lost != 0 || tl.Missing != 0 || tl.Duplicates != 0 || rerouted != 0 {
		t.Errorf("planned changes with images: %+v, %d re-routed; want nothing lost, duplicated or re-routed", tl, rerouted)
	}

	// A missing image: the task fails as Mesos says, and is retried later.
	ghost := "  ghost:\n    image: tiltai/missing:1\n    command: /bin/sleep\n    args: ['600']\n    cpus: 0.05\n    mem: 32\n"
	missing := strings.Replace(p.spec(), "links:\n", ghost+"links:\n", 1)
	s.submit(missing)
	want := "Failed to launch container: Failed to find archive for image 'tiltai/missing:1' at '" + filepath.Join(registry, "tiltai/missing:1.tar") + "'"
	s.waitFor(time.Minute, "the ghost service's launch to fail", func() (bool, string) {
		st, err := s.status()
		if err != nil {
			return false, err.Error()
		}
		g := serviceStatus(st, "ghost")
		return strings.Contains(g.LastFailure, want), fmt.Sprintf("%+v", g)
	})
}

// checkInImage reads the proof a service in an image left in its sandbox:
// the image's own file and ENV, its WorkingDir, and a mount table whose
// root is the container's rootfs with the sandbox at /mnt/mesos/sandbox.
func (s *system) checkInImage(taskID string, want ...string) {
	s.tb.Helper()
	box, err := s.sandbox(taskID)
	if err != nil {
		s.tb.Fatal(err)
	}
	proof, err := os.ReadFile(filepath.Join(box, "image-proof"))
	if err != nil {
		s.tb.Fatalf("task %s left no proof of its image: %v", taskID, err)
	}
	for _, w := range append(want, "pwd=/srv") {
		if !strings.Contains(string(proof), w+"\n") {
			s.tb.Errorf("task %s: the proof lacks %q:\n%s", taskID, w, proof)
		}
	}
	mounts, err := os.ReadFile(filepath.Join(box, "mountinfo"))
	if err != nil {
		s.tb.Fatal(err)
	}
	var root, sandbox bool
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		// Field 4 is the mount's root in its file system, field 5 where it
		// is mounted.
		root = root || f[4] == "/" && strings.Contains(f[3], "rootfses")
		sandbox = sandbox || f[4] == "/mnt/mesos/sandbox"
	}
	if !root || !sandbox {
		s.tb.Errorf("task %s: the mount table shows no image rootfs at / (%v) or no sandbox at /mnt/mesos/sandbox (%v):\n%s", taskID, root, sandbox, mounts)
	}
}

// TestImageFromRegistry runs the printer from an image pulled from a real
// Docker Registry v2 (docker-registry on loopback; an agent has one
// --docker_registry, so this is a system of its own), by the image's
// ENTRYPOINT (the spec names no command: the scheduler, given the same
// --docker_registry, reads it): the pipeline converges with the printer in
// its image, messages flow, and a second printer launched from the same
// image is not pulled again (the store is reused).
func TestImageFromRegistry(t *testing.T) {
	needImages(t)
	t.Parallel()
	url := imagetest.Registry(t)
	imagetest.Push(t, url, "tiltai/printer:1", serviceImage(t, "printer", "1"))
	s := newSystemWith(t, systemOptions{Mesos: func(c *localmesos.Config) {
		c.ImageProviders, c.DockerRegistry = "docker", url
		c.DockerStoreDir = filepath.Join(t.TempDir(), "store")
	}})
	s.startScheduler()
	p := pipeline{Rate: 200, Encryptors: 2, PrinterImage: "tiltai/printer:1", PrinterByEntrypoint: true}
	if strings.Contains(p.spec(), "/usr/local/bin/printer") {
		t.Fatalf("the spec names the printer's command:\n%s", p.spec())
	}
	s.converge(s.submit(p.spec()).Version, 2*time.Minute)
	first := s.running("printer")[0]
	s.checkInImage(first.ID, "image=printer:1", "env=printer-1")
	s.waitFor(30*time.Second, "the printer to receive", func() (bool, string) {
		pc, _, err := s.printerCounters()
		return err == nil && pc.Received > 0, fmt.Sprintf("%+v %v", pc, err)
	})
	// A relaunch of the image comes from the store, not the registry.
	s.converge(s.submit(strings.Replace(p.spec(), "args: [--report, 200ms]", "args: [--report, 300ms]", 1)).Version, time.Minute)
	second := s.running("printer")[0]
	if second.ID == first.ID {
		t.Fatalf("the printer %s was not replaced", first.ID)
	}
	s.checkInImage(second.ID, "image=printer:1", "env=printer-1")
	logb, err := os.ReadFile(filepath.Join(s.dir, "localmesos.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logb), `"msg":"pulled image"`); n != 1 {
		t.Errorf("the image was pulled %d times; want once, then taken from the store", n)
	}
}
