// Command mkimage builds the demo services' image without Docker: one layer
// holding a static tiltai binary at /usr/local/bin/tiltai (and the
// directories Mesos mounts on), saved in the legacy `docker save` layout
// that Mesos' local puller reads (--docker_registry=DIR looks up
// DIR/<name>.tar). scripts/vagrant-demo.sh runs it on the host:
//
//	go run ./scripts/mkimage -tiltai bin/tiltai -name tiltai/pipeline:1 -o bin/images
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/legacy/tarball"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	v1tarball "github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/tiltai/tiltai/internal/elfstatic"
)

func main() {
	bin := flag.String("tiltai", "bin/tiltai", "the static tiltai binary to put in the image")
	imageName := flag.String("name", "tiltai/pipeline:1", "the image's name, as the spec's `image:` gives it")
	out := flag.String("o", "bin/images", "the registry directory; the image goes to <dir>/<name>.tar")
	arch := flag.String("arch", "amd64", "the image's architecture")
	flag.Parse()
	if err := run(*bin, *imageName, *out, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(bin, imageName, out, arch string) error {
	// The image has no C library: a dynamic binary would not start in it.
	info, err := elfstatic.Inspect(bin)
	if err != nil {
		return err
	}
	if !info.Static() {
		return fmt.Errorf("%s is dynamically linked (%s); build it with CGO_ENABLED=0", bin, info)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"etc/", "tmp/", "proc/", "sys/", "dev/", "usr/", "usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "usr/local/bin/tiltai", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}); err != nil {
		return err
	}
	if _, err := tw.Write(body); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := v1tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config = v1.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}, WorkingDir: "/tmp"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	tag, err := name.NewTag(imageName, name.WithDefaultRegistry(""))
	if err != nil {
		return err
	}
	p := filepath.Join(out, imageName+".tar")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := tarball.Write(tag, img, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(p)
	return nil
}
