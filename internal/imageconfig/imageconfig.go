// Package imageconfig reads a Docker image's runtime configuration
// (ENTRYPOINT, CMD, ENV, WorkingDir, User) from where Mesos agents pull
// it: a directory of `docker save` archives, as Mesos' local puller reads
// them, or a Docker Registry v2. The embedded Mesos reads images with it
// while it unpacks them; the scheduler reads configurations with it, to
// run a service as Docker would when its spec names no command.
package imageconfig

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Legacy is what a legacy `docker save` archive says of its image: the
// repositories file and each layer's json, by layer id.
type Legacy struct {
	Repositories []byte
	JSONs        map[string][]byte
}

// Entry takes one archive entry's name and, when Legacy wants it
// (repositories, <layer id>/json), its content. It reports whether the
// entry was one of those.
func (l *Legacy) Entry(entryName string, r io.Reader) (bool, error) {
	clean := path.Clean(entryName)
	switch {
	case clean == "repositories":
		b, err := readSmall(r, entryName)
		l.Repositories = b
		return true, err
	case LayerEntry(clean, "json") != "":
		b, err := readSmall(r, entryName)
		if l.JSONs == nil {
			l.JSONs = map[string][]byte{}
		}
		l.JSONs[path.Dir(clean)] = b
		return true, err
	}
	return false, nil
}

// LayerEntry is the layer id of an archive entry <layer id>/file, "" when
// the entry is not that (a deeper path, or a layer id of ".." or ".").
func LayerEntry(clean, file string) string {
	dir := path.Dir(clean)
	if path.Base(clean) != file || dir == "." || dir == ".." || strings.Contains(dir, "/") {
		return ""
	}
	return dir
}

// Chain is the image's layer ids, base first, and the runtime
// configuration its top layer carries, for name ("repo:tag"; "latest"
// without a tag). missing names where a layer's json would be, for the
// error Mesos gives when it is absent.
func (l *Legacy) Chain(imageName, archive string, missing func(id string) string) ([]string, v1.Config, error) {
	if l.Repositories == nil {
		return nil, v1.Config{}, mesosError("Failed to read the repositories JSON file for image '%s' from '%s'", imageName, archive)
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal(l.Repositories, &repos); err != nil {
		return nil, v1.Config{}, mesosError("Failed to parse the repositories JSON file for image '%s': %v", imageName, err)
	}
	repo, tag := SplitName(imageName)
	top, ok := repos[repo][tag]
	if !ok {
		return nil, v1.Config{}, mesosError("Failed to find image '%s' in the repositories JSON file of '%s'", imageName, archive)
	}
	// Walk from the top layer to the base through each json's parent.
	var chain []string
	var config v1.Config
	for id := top; id != ""; {
		if len(chain) > 1000 {
			return nil, v1.Config{}, mesosError("Failed to find parent layer id for layer '%s': too many layers", id)
		}
		b, ok := l.JSONs[id]
		if !ok {
			return nil, v1.Config{}, mesosError("Failed to find parent layer id for layer '%s': Failed to read manifest from '%s': No such file or directory", id, missing(id))
		}
		var lj struct {
			Parent string    `json:"parent"`
			Config v1.Config `json:"config"`
		}
		if err := json.Unmarshal(b, &lj); err != nil {
			return nil, v1.Config{}, mesosError("Failed to find parent layer id for layer '%s': Failed to parse manifest: %v", id, err)
		}
		if len(chain) == 0 {
			config = lj.Config // the top layer carries the image's runtime config
		}
		chain = append(chain, id)
		id = lj.Parent
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, config, nil
}

// ArchivePath is where Mesos' local puller looks for an image: the name
// exactly as given (no library/, no :latest added), .tar.
func ArchivePath(dir, imageName string) string {
	return strings.TrimSuffix(dir, "/") + "/" + imageName + ".tar"
}

// SplitName splits "repo:tag" ("latest" when there is no tag; a ':' in a
// registry host:port is not a tag).
func SplitName(imageName string) (repo, tag string) {
	if i := strings.LastIndexByte(imageName, ':'); i >= 0 && !strings.Contains(imageName[i:], "/") {
		return imageName[:i], imageName[i+1:]
	}
	return imageName, "latest"
}

// IsRegistryURL says whether a --docker_registry value is a registry URL
// rather than a directory.
func IsRegistryURL(registry string) bool {
	return strings.HasPrefix(registry, "http://") || strings.HasPrefix(registry, "https://")
}

// Read is the runtime configuration of imageName from registry (a
// directory of archives or a registry URL), read without unpacking any
// layer.
func Read(ctx context.Context, registry, imageName string, transport http.RoundTripper) (v1.Config, error) {
	if IsRegistryURL(registry) {
		cf, err := remoteConfig(ctx, registry, imageName, transport)
		if err != nil {
			return v1.Config{}, err
		}
		return cf.Config, nil
	}
	archive := ArchivePath(registry, imageName)
	f, err := os.Open(archive)
	if err != nil {
		return v1.Config{}, mesosError("Failed to find archive for image '%s' at '%s'", imageName, archive)
	}
	defer f.Close()
	var l Legacy
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v1.Config{}, mesosError("Failed to read archive '%s' of image '%s': %v", archive, imageName, err)
		}
		if _, err := l.Entry(hdr.Name, tr); err != nil {
			return v1.Config{}, err
		}
		if err := ctx.Err(); err != nil {
			return v1.Config{}, err
		}
	}
	_, cfg, err := l.Chain(imageName, archive, func(id string) string { return archive + ":" + id + "/json" })
	return cfg, err
}

// Reference parses imageName as the agents' registry puller does: names
// without a registry host are looked up at registry's host.
func Reference(registry, imageName string) (name.Reference, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(registry, "http://"), "https://"), "/")
	opts := []name.Option{name.WithDefaultRegistry(host)}
	if strings.HasPrefix(registry, "http://") {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(imageName, opts...)
}

// hostArch is the architecture images are pulled for.
var hostArch = runtime.GOARCH

// Platform is the platform images are pulled for: Linux on this machine's
// architecture.
func Platform(arch string) v1.Platform { return v1.Platform{OS: "linux", Architecture: arch} }

func remoteConfig(ctx context.Context, registry, imageName string, transport http.RoundTripper) (*v1.ConfigFile, error) {
	ref, err := Reference(registry, imageName)
	if err != nil {
		return nil, mesosError("Failed to pull image '%s' from '%s': invalid image reference: %w", imageName, registry, err)
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	// Credentials as Docker keeps them ($DOCKER_CONFIG/config.json or
	// ~/.docker/config.json); anonymous without.
	ri, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(transport), remote.WithPlatform(Platform(hostArch)),
		remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, mesosError("Failed to pull image '%s' from '%s': cannot fetch the manifest: %w", imageName, registry, err)
	}
	cf, err := ri.ConfigFile()
	if err != nil {
		return nil, mesosError("Failed to pull image '%s' from '%s': bad config: %w", imageName, registry, err)
	}
	return cf, nil
}

func readSmall(r io.Reader, entryName string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", entryName, err)
	}
	if len(b) > 16<<20 {
		return nil, fmt.Errorf("%s is larger than 16 MiB", entryName)
	}
	return b, nil
}

// Argv is how Docker runs an image: a spec's command replaces the image's
// ENTRYPOINT and CMD (as `docker run --entrypoint`); otherwise ENTRYPOINT
// followed by the spec's args, or by CMD when there are none. It fails
// when there is nothing to run.
func Argv(c v1.Config, command string, args []string) ([]string, error) {
	switch {
	case command != "":
		return append([]string{command}, args...), nil
	case len(c.Entrypoint) > 0 && len(args) > 0:
		return append(append([]string(nil), c.Entrypoint...), args...), nil
	case len(c.Entrypoint) > 0:
		return append(append([]string(nil), c.Entrypoint...), c.Cmd...), nil
	case len(args) > 0:
		return append([]string(nil), args...), nil
	case len(c.Cmd) > 0:
		return append([]string(nil), c.Cmd...), nil
	}
	return nil, errors.New("the image has no ENTRYPOINT or CMD and the spec gives no command")
}

// mesosError is an error in Mesos' own words (capitalised, as the agent
// writes them in a task's status).
func mesosError(format string, args ...any) error { return fmt.Errorf(format, args...) }
