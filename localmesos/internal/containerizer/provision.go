package containerizer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// Provision makes a container rootfs from the image's layers with the copy
// backend (Mesos' --image_provisioner_backend=copy): each layer is copied
// over the previous ones, and its whiteouts remove what lower layers had
// (".wh.name" removes name, ".wh..wh..opq" empties its directory).
func (s *Store) Provision(img Image, rootfs string) error {
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("cannot create the rootfs: %w", err)
	}
	for _, l := range img.Layers {
		src := s.LayerRootfs(l)
		if err := applyWhiteouts(src, rootfs); err != nil {
			return fmt.Errorf("cannot apply the whiteouts of layer %s: %w", l, err)
		}
		if err := copyLayer(src, rootfs); err != nil {
			return fmt.Errorf("cannot copy layer %s into the rootfs: %w", l, err)
		}
	}
	return nil
}

func applyWhiteouts(layer, rootfs string) error {
	return filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := d.Name()
		if !strings.HasPrefix(base, whiteoutPrefix) {
			return nil
		}
		rel, _ := filepath.Rel(layer, filepath.Dir(p))
		dir, ok := realDir(rootfs, rel)
		if !ok {
			return nil // nothing below to hide
		}
		if base == opaqueWhiteout {
			entries, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
			return nil
		}
		// RemoveAll does not follow a symlink at the last component.
		return os.RemoveAll(filepath.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)))
	})
}

// realDir returns rootfs/rel if every component of it is a real directory
// (never a symlink, which could point out of the rootfs).
func realDir(rootfs, rel string) (string, bool) {
	p := rootfs
	if rel == "." {
		return p, true
	}
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return "", false
		}
	}
	return p, true
}

// copyLayer copies a layer over the rootfs. Parents are visited before
// their children and a directory replaces whatever non-directory was
// there, so every write lands in a real directory of the rootfs.
func copyLayer(layer, rootfs string) error {
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	return filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(layer, p)
		if strings.HasPrefix(d.Name(), whiteoutPrefix) {
			return nil
		}
		dst := filepath.Join(rootfs, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if rel == "." {
			return chown(dst, st, fi)
		}
		switch {
		case fi.IsDir():
			if cur, err := os.Lstat(dst); err == nil && !cur.IsDir() {
				if err := os.Remove(dst); err != nil {
					return err
				}
			}
			if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := replace(dst); err != nil {
				return err
			}
			if err := os.Symlink(t, dst); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := replace(dst); err != nil {
				return err
			}
			if st != nil && st.Nlink > 1 {
				key := inode{uint64(st.Dev), st.Ino}
				if first, ok := links[key]; ok {
					return os.Link(first, dst)
				}
				links[key] = dst
			}
			if err := copyFile(p, dst); err != nil {
				return err
			}
		case fi.Mode()&os.ModeNamedPipe != 0:
			if err := replace(dst); err != nil {
				return err
			}
			if err := syscall.Mkfifo(dst, uint32(fi.Mode().Perm())); err != nil {
				return err
			}
		default:
			return nil
		}
		return chown(dst, st, fi)
	})
}

func chown(dst string, st *syscall.Stat_t, fi fs.FileInfo) error {
	if st != nil {
		_ = os.Lchown(dst, int(st.Uid), int(st.Gid))
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return os.Chmod(dst, fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
}

// replace clears the way for a non-directory at p.
func replace(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return os.RemoveAll(p)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range where the filesystem allows
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
