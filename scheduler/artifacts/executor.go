package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tiltai/tiltai/internal/elfstatic"
)

// Executor is the executor binary as served to agents: a private copy of
// this tiltai binary named by its hash, so an agent fetches exactly the
// bytes the name promises even if the file on disk is replaced meanwhile.
type Executor struct {
	name string // tiltai-<sha256 prefix>
	path string
	dir  string
	sum  string
	// noImages says why this binary cannot be an executor in a container
	// image ("" when it can): it must be static, as an image may have no
	// C library and no dynamic loader.
	noImages string
}

// Stage copies binary (default: this process's executable) to a private
// directory under its hash name. Close removes the copy.
func Stage(binary string) (*Executor, error) {
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cannot find this binary to serve as the executor: %w", err)
		}
		binary = exe
	}
	src, err := os.Open(binary)
	if err != nil {
		return nil, fmt.Errorf("cannot read the executor binary: %w", err)
	}
	defer src.Close()
	dir, err := os.MkdirTemp("", "tiltai-artifact-")
	if err != nil {
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	tmp := filepath.Join(dir, "staging")
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		dst.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	a := &Executor{name: "tiltai-" + sum[:16], dir: dir, sum: sum}
	a.path = filepath.Join(dir, a.name)
	if err := os.Rename(tmp, a.path); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot stage the executor binary: %w", err)
	}
	a.noImages = staticProblem(binary, a.path)
	return a, nil
}

// staticProblem says why the executor binary at path (a copy of binary)
// cannot run in a container image, or "" if it can.
func staticProblem(binary, path string) string {
	info, err := elfstatic.Inspect(path)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot tell whether the executor binary %s is statically linked (%v); build tiltai for Linux with CGO_ENABLED=0", binary, err)
	case !info.Static():
		return fmt.Sprintf("the executor binary %s is dynamically linked (%s) and would not start in an image without a C library; build tiltai with CGO_ENABLED=0", binary, info)
	}
	return ""
}

// Name is the name the binary is served under, tiltai-<sha256 prefix>.
func (a *Executor) Name() string { return a.name }

// NoImages says why this binary cannot be the executor of a task in a
// container image, or "" when it can.
func (a *Executor) NoImages() string { return a.noImages }

// URL is where agents fetch the binary from a scheduler API at hostPort.
func (a *Executor) URL(hostPort string) string {
	return "http://" + hostPort + "/v1/artifacts/" + a.name
}

// Close removes the staged copy.
func (a *Executor) Close() error { return os.RemoveAll(a.dir) }

// ServeHTTP answers GET /v1/artifacts/{name}: only the current binary's
// name.
func (a *Executor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name != a.name {
		http.Error(w, fmt.Sprintf("no artifact %q here; this scheduler serves %s", name, a.name), http.StatusNotFound)
		return
	}
	f, err := os.Open(a.path)
	if err != nil {
		http.Error(w, "cannot read the executor binary", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read the executor binary", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Checksum-Sha256", a.sum)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, a.name, st.ModTime(), f)
}
