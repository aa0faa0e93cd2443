package imageconfig_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tiltai/tiltai/internal/imageconfig"
	"github.com/tiltai/tiltai/internal/imagetest"
)

var want = v1.Config{
	Entrypoint: []string{"/usr/local/bin/encryptor", "--fast"},
	Cmd:        []string{"--rounds", "3"},
	Env:        []string{"PATH=/usr/local/bin:/bin", "MODE=image"},
	WorkingDir: "/srv",
	User:       "1000:1000",
}

func image(t *testing.T) v1.Image {
	return imagetest.Image(t, want, imagetest.Layer(t, imagetest.Entry{Name: "srv/marker", Body: "x"}))
}

func checkConfig(t *testing.T, got v1.Config) {
	t.Helper()
	if !slices.Equal(got.Entrypoint, want.Entrypoint) || !slices.Equal(got.Cmd, want.Cmd) || !slices.Equal(got.Env, want.Env) ||
		got.WorkingDir != want.WorkingDir || got.User != want.User {
		t.Errorf("config %+v, want %+v", got, want)
	}
}

// TestReadDirectory reads the configuration from a directory of legacy
// `docker save` archives, as Mesos' local puller finds them (the name as
// given, .tar), without unpacking a layer; and fails as the agent would.
func TestReadDirectory(t *testing.T) {
	dir := t.TempDir()
	imagetest.SaveLegacy(t, dir, "team/encryptor:1.4", image(t))
	imagetest.SaveManifestOnly(t, dir, "manifest-only:1", image(t))
	got, err := imageconfig.Read(context.Background(), dir, "team/encryptor:1.4", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, got)
	for _, tc := range []struct{ name, want string }{
		{"team/encryptor", "Failed to find archive for image 'team/encryptor' at '" + filepath.Join(dir, "team/encryptor.tar") + "'"},
		{"missing:1", "Failed to find archive for image 'missing:1'"},
		{"manifest-only:1", "Failed to read the repositories JSON file for image 'manifest-only:1'"},
	} {
		if _, err := imageconfig.Read(context.Background(), dir, tc.name, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A tag the archive does not hold.
	if err := os.Rename(filepath.Join(dir, "team/encryptor:1.4.tar"), filepath.Join(dir, "team/encryptor:2.tar")); err != nil {
		t.Fatal(err)
	}
	if _, err := imageconfig.Read(context.Background(), dir, "team/encryptor:2", nil); err == nil || !strings.Contains(err.Error(), "Failed to find image 'team/encryptor:2' in the repositories JSON file") {
		t.Errorf("wrong tag: %v", err)
	}
}

// TestReadRegistry reads the configuration from a real Docker Registry v2.
func TestReadRegistry(t *testing.T) {
	url := imagetest.Registry(t)
	imagetest.Push(t, url, "team/encryptor:1.4", image(t))
	got, err := imageconfig.Read(context.Background(), url, "team/encryptor:1.4", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, got)
	if _, err := imageconfig.Read(context.Background(), url, "team/missing:1", nil); err == nil || !strings.Contains(err.Error(), "Failed to pull image 'team/missing:1' from '"+url+"': cannot fetch the manifest") {
		t.Errorf("missing: %v", err)
	}
}

func TestArgv(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"cmd1", "cmd2"}}
	for _, tc := range []struct {
		name    string
		cfg     v1.Config
		command string
		args    []string
		want    []string
	}{
		{"the image's entrypoint and cmd", img, "", nil, []string{"/ep", "-x", "cmd1", "cmd2"}},
		{"args replace cmd", img, "", []string{"--fast"}, []string{"/ep", "-x", "--fast"}},
		{"a command replaces both", img, "/bin/other", []string{"a"}, []string{"/bin/other", "a"}},
		{"cmd alone", v1.Config{Cmd: []string{"/cmd", "y"}}, "", nil, []string{"/cmd", "y"}},
		{"args alone run as the command", v1.Config{Cmd: []string{"/cmd"}}, "", []string{"/bin/sh", "-c", "x"}, []string{"/bin/sh", "-c", "x"}},
		{"nothing to run", v1.Config{}, "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageconfig.Argv(tc.cfg, tc.command, tc.args)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}
