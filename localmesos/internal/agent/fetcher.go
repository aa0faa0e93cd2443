package agent

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// maxFetch bounds one fetched file, so a runaway download cannot fill the
// disk.
const maxFetch = 4 << 30

// fetchURIs is the Mesos fetcher: every URI lands in the sandbox (http(s)
// downloads, absolute local paths or file:// URLs copied), made executable
// when asked, and archives (.tar, .tar.gz, .tgz, .tar.bz2, .zip) extracted
// unless extract is false. The cache flag is accepted and ignored.
func fetchURIs(ctx context.Context, client *http.Client, uris []mesos.CommandInfo_URI, sandbox string) error {
	for _, u := range uris {
		if err := fetchOne(ctx, client, u, sandbox); err != nil {
			return fmt.Errorf("failed to fetch '%s': %w", u.Value, err)
		}
	}
	return nil
}

func fetchOne(ctx context.Context, client *http.Client, u mesos.CommandInfo_URI, sandbox string) error {
	name := path.Base(strings.TrimRight(u.Value, "/"))
	if parsed, err := url.Parse(u.Value); err == nil && parsed.Scheme != "" {
		name = path.Base(parsed.Path)
	}
	if u.OutputFile != nil && *u.OutputFile != "" {
		name = *u.OutputFile
	}
	if name == "" || name == "." || name == "/" || strings.Contains(name, "..") {
		return fmt.Errorf("cannot derive a file name from the URI")
	}
	dst := filepath.Join(sandbox, name)
	if !strings.HasPrefix(dst, filepath.Clean(sandbox)+string(filepath.Separator)) {
		return errors.New("output file escapes the sandbox")
	}
	var src io.ReadCloser
	switch {
	case strings.HasPrefix(u.Value, "http://") || strings.HasPrefix(u.Value, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Value, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("HTTP %s", resp.Status)
		}
		src = resp.Body
	case strings.HasPrefix(u.Value, "file://"):
		f, err := os.Open(strings.TrimPrefix(u.Value, "file://"))
		if err != nil {
			return err
		}
		src = f
	case filepath.IsAbs(u.Value):
		f, err := os.Open(u.Value)
		if err != nil {
			return err
		}
		src = f
	default:
		return errors.New("only http(s) URLs and absolute local paths are implemented by localmesos (no hdfs, s3, docker or relative paths)")
	}
	defer src.Close()
	mode := os.FileMode(0o644)
	if u.GetExecutable() {
		mode = 0o755
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(src, maxFetch+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > maxFetch {
		return fmt.Errorf("larger than %d bytes", int64(maxFetch))
	}
	if u.GetExecutable() {
		return os.Chmod(dst, 0o755)
	}
	if u.Extract == nil || *u.Extract {
		return extract(dst, sandbox)
	}
	return nil
}

func extract(file, dir string) error {
	lower := strings.ToLower(file)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		return extractZip(file, dir)
	case strings.HasSuffix(lower, ".tar"):
		return withFile(file, func(r io.Reader) error { return extractTar(r, dir) })
	case strings.HasSuffix(lower, ".tar.gz") || strings.HasSuffix(lower, ".tgz"):
		return withFile(file, func(r io.Reader) error {
			gz, err := gzip.NewReader(r)
			if err != nil {
				return err
			}
			defer gz.Close()
			return extractTar(gz, dir)
		})
	case strings.HasSuffix(lower, ".tar.bz2") || strings.HasSuffix(lower, ".tbz2"):
		return withFile(file, func(r io.Reader) error { return extractTar(bzip2.NewReader(r), dir) })
	}
	return nil
}

func withFile(name string, fn func(io.Reader) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fn(f); err != nil {
		return fmt.Errorf("cannot extract %s: %w", filepath.Base(name), err)
	}
	return nil
}

// inside joins name to dir, refusing names that escape it.
func inside(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if p != filepath.Clean(dir) && !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
		return "", fmt.Errorf("archive entry %q escapes the sandbox", name)
	}
	return p, nil
}

func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := inside(dir, h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(p, tr, os.FileMode(h.Mode)&0o777); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) || strings.Contains(h.Linkname, "..") {
				return fmt.Errorf("archive symlink %q points outside the sandbox", h.Name)
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
}

func extractZip(file, dir string) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		p, err := inside(dir, f.Name)
		if err != nil {
			return err
		}
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		err = writeFile(p, rc, f.Mode()&0o777)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o644
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.LimitReader(r, maxFetch))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
