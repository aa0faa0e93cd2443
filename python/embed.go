// Package python embeds the Python gates (the tiltai package beside this
// file), so that the tiltai binary, which every agent already has as the
// executor, can run a Python service without anything installed but python3:
// `tiltai python -m tiltai.demo encryptor`.
package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed tiltai/*.py tiltai/py.typed
var files embed.FS

// Install writes the package into dir (as dir/tiltai, for PYTHONPATH=dir)
// unless it is there already. Each file is written to a
// temporary name and renamed, so that processes installing into the same
// directory at once never see a partial file.
func Install(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "tiltai"), 0o755); err != nil {
		return fmt.Errorf("cannot install the Python gates: %w", err)
	}
	return fs.WalkDir(files, "tiltai", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, name)
		if old, err := os.ReadFile(dst); err == nil && string(old) == string(data) {
			return nil
		}
		tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
		if err != nil {
			return fmt.Errorf("cannot install the Python gates: %w", err)
		}
		_, err = tmp.Write(data)
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), dst)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("cannot install the Python gates: %w", err)
		}
		return nil
	})
}

// Version names the embedded package's content (a hash of every file), for
// a cache directory that a different build does not share.
func Version() string {
	h := sha256.New()
	fs.WalkDir(files, "tiltai", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := files.ReadFile(name)
			fmt.Fprintf(h, "%s %d\n", name, len(data))
			h.Write(data)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16]
}
