// Package elfstatic tells whether an ELF executable runs without a dynamic
// loader. A service's image may have no libc and no loader at all, so the
// executor binary that Mesos starts inside it must be static.
package elfstatic

import (
	"debug/elf"
	"fmt"
	"strings"
)

// Info is how an executable is linked.
type Info struct {
	// Interp is the dynamic loader it asks for (PT_INTERP), "" if none.
	Interp string
	// Needed are the shared libraries it names (DT_NEEDED).
	Needed []string
}

// Static reports whether the executable needs neither a loader nor shared
// libraries. A static PIE (PT_DYNAMIC without DT_NEEDED) is static.
func (i Info) Static() bool { return i.Interp == "" && len(i.Needed) == 0 }

// String says why an executable is dynamic, for error messages:
// "interpreter /lib64/ld-linux-x86-64.so.2, needs libc.so.6".
func (i Info) String() string {
	if i.Static() {
		return "statically linked"
	}
	var parts []string
	if i.Interp != "" {
		parts = append(parts, "interpreter "+i.Interp)
	}
	if len(i.Needed) > 0 {
		parts = append(parts, "needs "+strings.Join(i.Needed, ", "))
	}
	return strings.Join(parts, ", ")
}

// Inspect reads how the ELF file at path is linked.
func Inspect(path string) (Info, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("cannot read %s as an ELF executable: %w", path, err)
	}
	defer f.Close()
	var info Info
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return Info{}, fmt.Errorf("cannot read the interpreter of %s: %w", path, err)
		}
		info.Interp = strings.TrimRight(string(b), "\x00")
	}
	// ImportedLibraries reads DT_NEEDED; a file without a dynamic section
	// has none.
	libs, err := f.ImportedLibraries()
	if err != nil && f.Section(".dynamic") != nil {
		return Info{}, fmt.Errorf("cannot read the shared libraries %s needs: %w", path, err)
	}
	info.Needed = libs
	return info, nil
}

// IsStatic reports whether the ELF executable at path is statically linked.
func IsStatic(path string) (bool, error) {
	info, err := Inspect(path)
	if err != nil {
		return false, err
	}
	return info.Static(), nil
}
