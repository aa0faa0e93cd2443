package agent

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func tarGz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestFetcher(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{
		"bundle.tar.gz": tarGz(t, map[string]string{"app/run.sh": "#!/bin/sh\necho hi\n"}),
		"plain.txt":     []byte("plain"),
		"tool":          []byte("#!/bin/sh\n"),
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("z/inside.txt")
	_, _ = w.Write([]byte("zipped"))
	zw.Close()
	files["pack.zip"] = zb.Bytes()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(src)))
	defer srv.Close()
	yes, no := true, false
	out := "renamed.txt"
	sandbox := t.TempDir()
	err := fetchURIs(context.Background(), srv.Client(), []mesos.CommandInfo_URI{
		{Value: srv.URL + "/bundle.tar.gz"},
		{Value: srv.URL + "/pack.zip"},
		{Value: srv.URL + "/tool", Executable: &yes},
		{Value: filepath.Join(src, "plain.txt"), OutputFile: &out},
		{Value: "file://" + filepath.Join(src, "bundle.tar.gz"), Extract: &no, OutputFile: ptr("kept.tar.gz")},
	}, sandbox)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"app/run.sh": "#!/bin/sh\necho hi\n", "z/inside.txt": "zipped", "renamed.txt": "plain"} {
		got, err := os.ReadFile(filepath.Join(sandbox, path))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", path, got, err)
		}
	}
	if st, err := os.Stat(filepath.Join(sandbox, "tool")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("tool not executable: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(sandbox, "kept.tar.gz")); err != nil {
		t.Errorf("extract=false file missing: %v", err)
	}

	for name, uri := range map[string]mesos.CommandInfo_URI{
		"404":      {Value: srv.URL + "/missing"},
		"relative": {Value: "relative/path"},
		"hdfs":     {Value: "hdfs://x/y"},
		"escape":   {Value: srv.URL + "/plain.txt", OutputFile: ptr("../escaped")},
	} {
		if err := fetchURIs(context.Background(), srv.Client(), []mesos.CommandInfo_URI{uri}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "failed to fetch") {
			t.Errorf("%s: %v, want a fetch error", name, err)
		}
	}
	evil := tarGz(t, map[string]string{"../../evil": "x"})
	if err := os.WriteFile(filepath.Join(src, "evil.tar.gz"), evil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fetchURIs(context.Background(), srv.Client(), []mesos.CommandInfo_URI{{Value: srv.URL + "/evil.tar.gz"}}, t.TempDir()); err == nil {
		t.Error("an archive escaping the sandbox was extracted")
	}
}

func ptr(s string) *string { return &s }
