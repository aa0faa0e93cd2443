package containerizer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Limits bound what one layer may unpack to.
type Limits struct {
	// MaxBytes is the total size of regular files (default 8 GiB).
	MaxBytes int64
	// MaxEntries is the number of tar entries (default 1,000,000).
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 8 << 30
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 1_000_000
	}
	return l
}

// UnsafeEntryError is a layer entry that would write outside its
// directory, or break a limit.
type UnsafeEntryError struct {
	Entry, Why string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("unsafe layer entry '%s': %s", e.Entry, e.Why)
}

// unpackLayer extracts an uncompressed layer tar into dir (which must exist
// and be empty) and returns the sha256 of the stream ("sha256:<hex>", the
// layer's diff id). Whiteout files are kept as they are; the copy backend
// applies them. Nothing is ever written outside dir: entries with `..` or an
// absolute name, entries whose parent is a symlink, and hard links to
// anything outside are refused, and the whole layer fails.
func unpackLayer(r io.Reader, dir string, lim Limits) (string, error) {
	lim = lim.withDefaults()
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("cannot read the layer tar: %w", err)
		}
		if n >= lim.MaxEntries {
			return "", &UnsafeEntryError{hdr.Name, fmt.Sprintf("more than %d entries in one layer", lim.MaxEntries)}
		}
		rel, err := safeRel(hdr.Name)
		if err != nil {
			return "", err
		}
		if rel == "." {
			continue
		}
		if err := checkParents(dir, rel, hdr.Name); err != nil {
			return "", err
		}
		target := filepath.Join(dir, rel)
		mode := os.FileMode(hdr.Mode) & os.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
				if err := os.Remove(target); err != nil {
					return "", err
				}
			}
			if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return "", fmt.Errorf("cannot create %s: %w", hdr.Name, err)
			}
		case tar.TypeReg:
			if total += hdr.Size; total > lim.MaxBytes {
				return "", &UnsafeEntryError{hdr.Name, fmt.Sprintf("the layer unpacks to more than %d bytes", lim.MaxBytes)}
			}
			if err := removeNonDir(target); err != nil {
				return "", err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return "", fmt.Errorf("cannot create %s: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("cannot write %s: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			// The target is only text here; it is resolved inside the
			// container's root. What makes it safe is that no later entry
			// may go through it (checkParents).
			if err := removeNonDir(target); err != nil {
				return "", err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return "", fmt.Errorf("cannot create symlink %s: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			lrel, err := safeRel(hdr.Linkname)
			if err != nil || lrel == "." {
				return "", &UnsafeEntryError{hdr.Name, fmt.Sprintf("hard link to '%s' outside the layer", hdr.Linkname)}
			}
			if err := checkParents(dir, lrel, hdr.Name); err != nil {
				return "", err
			}
			old := filepath.Join(dir, lrel)
			fi, err := os.Lstat(old)
			if err != nil {
				return "", &UnsafeEntryError{hdr.Name, fmt.Sprintf("hard link to '%s', which is not in the layer", hdr.Linkname)}
			}
			if fi.IsDir() {
				return "", &UnsafeEntryError{hdr.Name, "hard link to a directory"}
			}
			if err := removeNonDir(target); err != nil {
				return "", err
			}
			// link(2) does not follow a symlink at old: a link to a link
			// stays a link to the symlink inode, inside dir.
			if err := os.Link(old, target); err != nil {
				return "", fmt.Errorf("cannot create hard link %s: %w", hdr.Name, err)
			}
			continue // the inode's mode and owner are the linked file's
		case tar.TypeFifo:
			if err := removeNonDir(target); err != nil {
				return "", err
			}
			if err := syscall.Mkfifo(target, uint32(mode)); err != nil {
				return "", fmt.Errorf("cannot create fifo %s: %w", hdr.Name, err)
			}
		case tar.TypeChar, tar.TypeBlock:
			// Device nodes in images are not created: the container gets
			// its /dev from the launcher.
			continue
		case tar.TypeXGlobalHeader:
			continue
		default:
			return "", &UnsafeEntryError{hdr.Name, fmt.Sprintf("unsupported tar entry type %q", hdr.Typeflag)}
		}
		_ = os.Lchown(target, hdr.Uid, hdr.Gid)
		if hdr.Typeflag != tar.TypeSymlink {
			// After chown, which clears setuid bits.
			if err := os.Chmod(target, mode|modeBits(hdr.Mode)); err != nil {
				return "", fmt.Errorf("cannot chmod %s: %w", hdr.Name, err)
			}
		}
	}
	// Drain what tar.Reader left (padding) so the digest covers the stream.
	if _, err := io.Copy(io.Discard, io.TeeReader(r, h)); err != nil {
		return "", fmt.Errorf("cannot read the layer tar: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// modeBits turns the tar header's setuid/setgid/sticky bits into Go's.
func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// safeRel turns an entry name into a clean relative path, refusing
// absolute names and any `..` component (as GNU tar does: "Member name
// contains '..'").
func safeRel(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", &UnsafeEntryError{name, "absolute path"}
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", &UnsafeEntryError{name, "member name contains '..'"}
		}
	}
	return path.Clean(name), nil
}

// checkParents refuses an entry whose parent directories, inside dir, are
// anything but real directories: a symlink there (`link -> /etc` then
// `link/passwd`) would make the write land outside.
func checkParents(dir, rel, entry string) error {
	p := dir
	parts := strings.Split(rel, "/")
	for _, c := range parts[:len(parts)-1] {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("cannot create %s: %w", p, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return &UnsafeEntryError{entry, fmt.Sprintf("its parent '%s' is a symbolic link", strings.TrimPrefix(p, dir+"/"))}
		}
		if !fi.IsDir() {
			return &UnsafeEntryError{entry, fmt.Sprintf("its parent '%s' is not a directory", strings.TrimPrefix(p, dir+"/"))}
		}
	}
	return nil
}

// removeNonDir removes what is at p unless it is a directory (a later
// entry replaces an earlier one, as tar does).
func removeNonDir(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("cannot replace directory %s with a file", p)
	}
	return os.Remove(p)
}
