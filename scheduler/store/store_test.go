package store

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"
)

// Both stores load what was applied, by prefix; a nil value deletes.
func TestStores(t *testing.T) {
	ctx := context.Background()
	bolt, err := OpenBolt(filepath.Join(t.TempDir(), "state", "tiltai.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	for name, st := range map[string]interface {
		Load(context.Context, string) (map[string][]byte, error)
		Apply(context.Context, map[string][]byte) error
	}{"mem": NewMem(), "bolt": bolt} {
		t.Run(name, func(t *testing.T) {
			if err := st.Apply(ctx, map[string][]byte{"task/a.1": []byte("1"), "task/b.2": []byte("2"), "meta": []byte("m")}); err != nil {
				t.Fatal(err)
			}
			if err := st.Apply(ctx, map[string][]byte{"task/a.1": nil, "task/b.2": []byte("two")}); err != nil {
				t.Fatal(err)
			}
			got, err := st.Load(ctx, "task/")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string][]byte{"task/b.2": []byte("two")}; !maps.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Fatalf("Load(task/) = %q, want %q", got, want)
			}
			all, _ := st.Load(ctx, "")
			if len(all) != 2 {
				t.Fatalf("Load() = %q, want 2 keys", all)
			}
		})
	}
}

// A failing Mem says the store is unavailable, never "nothing stored".
func TestMemFail(t *testing.T) {
	m := NewMem()
	m.SetFail(errors.New("disk gone"))
	if _, err := m.Load(context.Background(), ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Load: %v, want ErrUnavailable", err)
	}
	if err := m.Apply(context.Background(), map[string][]byte{"k": nil}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Apply: %v, want ErrUnavailable", err)
	}
}
