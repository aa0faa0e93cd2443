package containerizer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tiltai/tiltai/internal/imagetest"
)

const marker = "only in the image\n"

func busyboxImage(t *testing.T, extra ...v1.Layer) v1.Image {
	layers := append([]v1.Layer{imagetest.BusyboxLayer(t), imagetest.Layer(t, imagetest.Entry{Name: "image-only-file", Body: marker})}, extra...)
	return imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "IMAGE_VAR=1"}, WorkingDir: "/tmp"}, layers...)
}

func TestImageDirectoryPullAndStoreReuse(t *testing.T) {
	reg, storeDir := t.TempDir(), t.TempDir()
	imagetest.SaveLegacy(t, reg, "busybox-test:1", busyboxImage(t))
	s := NewStore(storeDir, reg, Limits{}, nil)
	img, pulled, err := s.Get(context.Background(), "busybox-test:1")
	if err != nil || !pulled {
		t.Fatalf("first Get: pulled=%v err=%v", pulled, err)
	}
	if len(img.Layers) != 2 || img.Config.WorkingDir != "/tmp" || len(ImageEnv(img.Config)) != 2 {
		t.Fatalf("image = %+v", img)
	}
	b, err := os.ReadFile(filepath.Join(s.LayerRootfs(img.Layers[1]), "image-only-file"))
	if err != nil || string(b) != marker {
		t.Fatalf("marker in the store: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(s.LayerRootfs(img.Layers[0]), "bin/sh")); err != nil || l != "busybox" {
		t.Fatalf("bin/sh -> %q, %v", l, err)
	}
	// Same store, new agent incarnation: nothing is unpacked again.
	st, _ := os.Stat(s.LayerRootfs(img.Layers[0]))
	s2 := NewStore(storeDir, reg, Limits{}, nil)
	if _, pulled, err := s2.Get(context.Background(), "busybox-test:1"); err != nil || pulled {
		t.Fatalf("second Get: pulled=%v err=%v", pulled, err)
	}
	st2, _ := os.Stat(s.LayerRootfs(img.Layers[0]))
	if !os.SameFile(st, st2) {
		t.Fatal("the layer was unpacked again")
	}
	if entries, _ := os.ReadDir(filepath.Join(storeDir, "staging")); len(entries) != 0 {
		t.Fatalf("staging left behind: %v", entries)
	}
}

func TestImageDirectoryFailures(t *testing.T) {
	reg := t.TempDir()
	s := NewStore(t.TempDir(), reg, Limits{}, nil)
	for _, name := range []string{"busybox-missing:1", "library/busybox-test:1", "busybox-test", ""} {
		_, _, err := s.Get(context.Background(), name)
		want := "Failed to find archive for image '" + name + "' at '" + reg + "/" + name + ".tar'"
		if err == nil || err.Error() != want {
			t.Errorf("Get(%q) = %v, want %q", name, err, want)
		}
	}
	imagetest.SaveManifestOnly(t, reg, "new-layout:1", busyboxImage(t))
	if _, _, err := s.Get(context.Background(), "new-layout:1"); err == nil || !strings.Contains(err.Error(), "Failed to") {
		t.Errorf("manifest-only tarball: %v", err)
	}
}

func TestImageHostileLayers(t *testing.T) {
	escape := t.TempDir()
	if err := os.WriteFile(filepath.Join(escape, "hardlink-target"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]imagetest.Entry{
		"dotdot":         {{Name: "../../evil-dotdot"}},
		"inner-dotdot":   {{Name: "a/../../evil"}},
		"absolute":       {{Name: escape + "/evil-abs"}},
		"symlink-escape": {{Name: "link", Type: tar.TypeSymlink, Linkname: escape}, {Name: "link/evil-through-symlink"}},
		"symlink-dir":    {{Name: "etc", Type: tar.TypeSymlink, Linkname: "/etc"}, {Name: "etc/passwd", Body: "root::0:0::/:/bin/sh\n"}},
		"link-to-link":   {{Name: "l1", Type: tar.TypeSymlink, Linkname: escape}, {Name: "l2", Type: tar.TypeSymlink, Linkname: "l1"}, {Name: "l2/evil"}},
		"hardlink-abs":   {{Name: "hardlink-evil", Type: tar.TypeLink, Linkname: escape + "/hardlink-target"}},
		"hardlink-up":    {{Name: "hardlink-evil", Type: tar.TypeLink, Linkname: "../hardlink-target"}},
		"hardlink-via-symlink": {{Name: "l", Type: tar.TypeSymlink, Linkname: escape},
			{Name: "hardlink-evil", Type: tar.TypeLink, Linkname: "l/hardlink-target"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			reg, storeDir := t.TempDir(), t.TempDir()
			imagetest.SaveLegacy(t, reg, "evil:1", busyboxImage(t, imagetest.Layer(t, entries...)))
			_, _, err := NewStore(storeDir, reg, Limits{}, nil).Get(context.Background(), "evil:1")
			var unsafe *UnsafeEntryError
			if !errors.As(err, &unsafe) {
				t.Fatalf("Get = %v, want an unsafe entry error", err)
			}
			if !strings.Contains(err.Error(), "of image 'evil:1'") {
				t.Errorf("error does not name the image: %v", err)
			}
			if got, _ := os.ReadDir(escape); len(got) != 1 {
				t.Errorf("something was written outside the store: %v", got)
			}
			if b, _ := os.ReadFile("/etc/passwd"); bytes.HasPrefix(b, []byte("root::0:0::/:/bin/sh\n")) {
				t.Fatal("/etc/passwd was overwritten")
			}
			if entries, _ := os.ReadDir(filepath.Join(storeDir, "staging")); len(entries) != 0 {
				t.Errorf("staging left behind: %v", entries)
			}
			if entries, _ := os.ReadDir(filepath.Join(storeDir, "images")); len(entries) != 0 {
				t.Errorf("a refused image was cached: %v", entries)
			}
		})
	}
}

func TestImageLayerLimits(t *testing.T) {
	reg := t.TempDir()
	big := imagetest.Layer(t, imagetest.Entry{Name: "big", Body: strings.Repeat("x", 4096)})
	imagetest.SaveLegacy(t, reg, "big:1", imagetest.Image(t, v1.Config{}, big))
	many := imagetest.Layer(t, imagetest.Entry{Name: "a"}, imagetest.Entry{Name: "b"}, imagetest.Entry{Name: "c"})
	imagetest.SaveLegacy(t, reg, "many:1", imagetest.Image(t, v1.Config{}, many))
	s := NewStore(t.TempDir(), reg, Limits{MaxBytes: 1024, MaxEntries: 2}, nil)
	for _, n := range []string{"big:1", "many:1"} {
		var unsafe *UnsafeEntryError
		if _, _, err := s.Get(context.Background(), n); !errors.As(err, &unsafe) {
			t.Errorf("Get(%s) = %v, want a limit error", n, err)
		}
	}
}

func TestImageWhiteouts(t *testing.T) {
	reg := t.TempDir()
	lower := imagetest.Layer(t, imagetest.Entry{Name: "keep"}, imagetest.Entry{Name: "gone"},
		imagetest.Entry{Name: "d/", Type: tar.TypeDir}, imagetest.Entry{Name: "d/old"},
		imagetest.Entry{Name: "lib", Type: tar.TypeSymlink, Linkname: "/etc"})
	upper := imagetest.Layer(t, imagetest.Entry{Name: ".wh.gone"}, imagetest.Entry{Name: "d/", Type: tar.TypeDir},
		imagetest.Entry{Name: "d/.wh..wh..opq"}, imagetest.Entry{Name: "d/new"},
		imagetest.Entry{Name: "lib/", Type: tar.TypeDir}, imagetest.Entry{Name: "lib/x", Body: "in the rootfs"})
	imagetest.SaveLegacy(t, reg, "wh:1", imagetest.Image(t, v1.Config{}, lower, upper))
	s := NewStore(t.TempDir(), reg, Limits{}, nil)
	img, _, err := s.Get(context.Background(), "wh:1")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := s.Provision(img, rootfs); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.WalkDir(rootfs, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(rootfs, p)
		got = append(got, rel)
		return err
	})
	want := ". d d/new keep lib lib/x"
	if strings.Join(got, " ") != want {
		t.Fatalf("rootfs = %v, want %s", got, want)
	}
	if _, err := os.Stat("/etc/x"); err == nil {
		t.Fatal("the copy went through a symlink to the host")
	}
}

func TestImageRegistryPull(t *testing.T) {
	url := imagetest.Registry(t)
	imagetest.Push(t, url, "team/busybox-test:1", busyboxImage(t))
	s := NewStore(t.TempDir(), url, Limits{}, nil)
	img, pulled, err := s.Get(context.Background(), "team/busybox-test:1")
	if err != nil || !pulled {
		t.Fatalf("Get: pulled=%v err=%v", pulled, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.LayerRootfs(img.Layers[1]), "image-only-file")); err != nil || string(b) != marker {
		t.Fatalf("marker: %q %v", b, err)
	}
	if _, pulled, err := s.Get(context.Background(), "team/busybox-test:1"); err != nil || pulled {
		t.Fatalf("second Get: pulled=%v err=%v", pulled, err)
	}
	_, _, err = s.Get(context.Background(), "team/missing:1")
	if err == nil || !strings.Contains(err.Error(), "Failed to pull image 'team/missing:1' from '"+url+"'") {
		t.Fatalf("missing image: %v", err)
	}
}

func TestImageLaunchInNamespaces(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("containers need Linux and root")
	}
	reg := t.TempDir()
	imagetest.SaveLegacy(t, reg, "busybox-test:1", busyboxImage(t))
	s := NewStore(t.TempDir(), reg, Limits{}, nil)
	img, _, err := s.Get(context.Background(), "busybox-test:1")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := s.Provision(img, rootfs); err != nil {
		t.Fatal(err)
	}
	sandbox, vol := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "from-host"), []byte("volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path, argv, _ := LaunchCommand(img.Config, true, "cat /image-only-file; cat /data/from-host; echo pid=$$ pwd=$(pwd) var=$IMAGE_VAR; touch /data/x 2>&1 || echo ro; cat /proc/self/mountinfo; ls /dev", true, nil)
	cmd, err := Command(Spec{Rootfs: rootfs, Sandbox: sandbox, Path: path, Args: argv,
		Env: append(ImageEnv(img.Config), "MESOS_SANDBOX="+SandboxPath), Dir: img.Config.WorkingDir,
		Volumes: []Volume{{HostPath: vol, ContainerPath: "/data", ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	o := out.String()
	for _, want := range []string{marker, "volume\n", "pid=1 pwd=/tmp var=1", "ro\n", "/rootfs / rw", " /mnt/mesos/sandbox ", " /proc ", " /dev ", "null", "urandom"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "/dev/vda") && strings.Contains(o, " /home ") {
		t.Errorf("host mounts are visible:\n%s", o)
	}
}
