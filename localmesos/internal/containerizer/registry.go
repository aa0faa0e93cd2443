package containerizer

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tiltai/tiltai/internal/imageconfig"
)

// pullRegistry is Mesos' registry puller: a Docker Registry v2 at the
// --docker_registry URL (names that carry their own registry host go
// there). go-containerregistry checks every blob against its digest; the
// unpacked stream is also checked against the config's diff id. Layers the
// store has already are not downloaded.
func (s *Store) pullRegistry(ctx context.Context, imageName, staging string) (Image, error) {
	fail := func(what string, err error) (Image, error) {
		return Image{}, failure("Failed to pull image '%s' from '%s': %s: %w", imageName, s.registry, what, err)
	}
	ref, err := imageconfig.Reference(s.registry, imageName)
	if err != nil {
		return fail("invalid image reference", err)
	}
	transport := s.client.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	ri, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(transport),
		remote.WithPlatform(imageconfig.Platform(hostArch())))
	if err != nil {
		return fail("cannot fetch the manifest", err)
	}
	cf, err := ri.ConfigFile()
	if err != nil {
		return fail("bad config", err)
	}
	layers, err := ri.Layers()
	if err != nil {
		return fail("bad manifest", err)
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return fail("bad manifest", fmt.Errorf("%d layers but %d diff ids in the config", len(layers), len(cf.RootFS.DiffIDs)))
	}
	img := Image{Name: imageName, Config: cf.Config}
	for i, l := range layers {
		want := cf.RootFS.DiffIDs[i].String()
		if _, err := os.Stat(s.LayerRootfs(want)); err == nil {
			img.Layers = append(img.Layers, want)
			continue
		}
		dir := filepath.Join(staging, fmt.Sprintf("layer-%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fail("cannot stage a layer", err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return fail(fmt.Sprintf("cannot fetch layer %d", i), err)
		}
		got, err := unpackLayer(rc, dir, s.limits)
		rc.Close()
		if err != nil {
			d, _ := l.Digest()
			return Image{}, failure("Failed to extract layer '%s' of image '%s': %w", d, imageName, err)
		}
		if got != want {
			return fail(fmt.Sprintf("layer %d", i), fmt.Errorf("diff id is %s, the config says %s", got, want))
		}
		if err := s.commit(dir, want); err != nil {
			return fail("cannot move a layer into the store", err)
		}
		img.Layers = append(img.Layers, want)
	}
	return img, nil
}
