// Package depcheck lets a test hold a package to its place in the
// architecture: the leaf packages (wire types, contracts, vocabularies) and
// the pure cores promise to link no runtime, and a test that runs
// go list -deps keeps the promise from eroding one import at a time.
package depcheck

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// NoDeps fails t when pkg (an import path) depends, directly or not, on a
// package that matches one of banned: an import path, or a path ending in
// "/..." for it and everything below it (go.etcd.io/bbolt/...).
func NoDeps(t testing.TB, pkg string, banned ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list; skipped with -short")
	}
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = errors.Join(err, errors.New(string(ee.Stderr)))
		}
		t.Fatalf("cannot list the dependencies of %s: %v", pkg, err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if Match(b, dep) {
				t.Errorf("%s depends on %s (banned: %s); move what it needs into a leaf package instead", pkg, dep, b)
			}
		}
	}
}

// Match reports whether the import path matches pattern (a path, or a
// path ending in "/..." for it and everything below it).
func Match(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}
