package containerizer

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tiltai/tiltai/internal/imageconfig"
)

// Image is a pulled image: its layers in the store, base first, and the
// runtime configuration the docker/runtime isolator applies.
type Image struct {
	Name string `json:"name"`
	// Layers are diff ids ("sha256:<hex>"), each unpacked once in the store.
	Layers []string  `json:"layers"`
	Config v1.Config `json:"config"`
}

// Store is the docker store of --docker_store_dir: unpacked layers keyed
// by their content digest (layers/<hex>/rootfs), shared by every image and
// task, and the images pulled so far (images/<sha256 of name>.json).
type Store struct {
	dir      string
	registry string // a directory, or an http(s):// Docker Registry v2 URL
	limits   Limits
	client   *http.Client

	mu sync.Mutex // one pull at a time: two tasks of one image unpack once
}

// NewStore returns the store in dir, pulling from registry.
func NewStore(dir, registry string, limits Limits, client *http.Client) *Store {
	if client == nil {
		client = http.DefaultClient
	}
	return &Store{dir: dir, registry: registry, limits: limits, client: client}
}

// LayerRootfs is where a layer is unpacked.
func (s *Store) LayerRootfs(diffID string) string {
	return filepath.Join(s.dir, "layers", strings.TrimPrefix(diffID, "sha256:"), "rootfs")
}

// Get returns the image, pulling it unless it was pulled before; pulled
// reports whether it had to.
func (s *Store) Get(ctx context.Context, name string) (img Image, pulled bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	meta := filepath.Join(s.dir, "images", digestOf(name)+".json")
	if b, err := os.ReadFile(meta); err == nil && json.Unmarshal(b, &img) == nil && s.haveLayers(img) {
		return img, false, nil
	}
	for _, d := range []string{"layers", "images", "staging"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return Image{}, false, fmt.Errorf("cannot create the docker store: %w", err)
		}
	}
	staging, err := os.MkdirTemp(filepath.Join(s.dir, "staging"), "")
	if err != nil {
		return Image{}, false, fmt.Errorf("cannot create a staging directory: %w", err)
	}
	defer os.RemoveAll(staging)
	if isURL(s.registry) {
		img, err = s.pullRegistry(ctx, name, staging)
	} else {
		img, err = s.pullDir(name, staging)
	}
	if err != nil {
		return Image{}, false, err
	}
	b, _ := json.Marshal(img)
	if err := writeFileAtomic(meta, b); err != nil {
		return Image{}, false, fmt.Errorf("cannot cache image '%s': %w", name, err)
	}
	return img, true, nil
}

func (s *Store) haveLayers(img Image) bool {
	for _, l := range img.Layers {
		if _, err := os.Stat(s.LayerRootfs(l)); err != nil {
			return false
		}
	}
	return true
}

func isURL(r string) bool {
	return strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://")
}

// commit moves a layer unpacked in staging into the store, unless the
// store has it already (same content from another image).
func (s *Store) commit(unpacked, diffID string) error {
	dst := s.LayerRootfs(diffID)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Rename(unpacked, dst)
}

// pullDir is Mesos' local puller (image_tar_puller.cpp): the archive is
// <registry>/<name as given>.tar in the legacy `docker save` layout
// (repositories, <layer id>/json, <layer id>/layer.tar).
func (s *Store) pullDir(name, staging string) (Image, error) {
	archive := imageconfig.ArchivePath(s.registry, name)
	f, err := os.Open(archive)
	if err != nil {
		return Image{}, failure("Failed to find archive for image '%s' at '%s'", name, archive)
	}
	defer f.Close()
	var legacy imageconfig.Legacy
	unpacked := map[string]string{} // layer id -> diff id
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Image{}, failure("Failed to read archive '%s' of image '%s': %v", archive, name, err)
		}
		if took, err := legacy.Entry(hdr.Name, tr); took || err != nil {
			if err != nil {
				return Image{}, err
			}
			continue
		}
		if id := imageconfig.LayerEntry(path.Clean(hdr.Name), "layer.tar"); id != "" {
			dir := filepath.Join(staging, "rootfs-"+digestOf(id))
			if err := os.Mkdir(dir, 0o755); err != nil {
				return Image{}, failure("Failed to extract layer '%s' of image '%s': %v", id, name, err)
			}
			diffID, err := unpackLayer(tr, dir, s.limits)
			if err != nil {
				return Image{}, failure("Failed to extract layer '%s' of image '%s': %w", id, name, err)
			}
			unpacked[id] = diffID
		}
	}
	chain, config, err := legacy.Chain(name, archive, func(id string) string { return filepath.Join(staging, id, "json") })
	if err != nil {
		return Image{}, err
	}
	img := Image{Name: name, Config: config}
	for _, id := range chain {
		diffID, ok := unpacked[id]
		if !ok {
			return Image{}, failure("Failed to find layer tar ball of layer '%s' of image '%s'", id, name)
		}
		if err := s.commit(filepath.Join(staging, "rootfs-"+digestOf(id)), diffID); err != nil {
			return Image{}, fmt.Errorf("cannot move layer '%s' of image '%s' into the store: %w", id, name, err)
		}
		img.Layers = append(img.Layers, diffID)
	}
	return img, nil
}

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp-" + randomHex()
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
