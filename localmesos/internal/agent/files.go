package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// The agent's /files endpoints (/files/read, /files/browse,
// /files/download), after Mesos 1.11's src/files/files.cpp: a path is
// served only under a directory the agent attached — each executor's
// sandbox, under its real path and under the virtual
// /frameworks/FW/executors/EX/runs/latest — and only if, with symbolic
// links resolved, it stays inside that directory. Nothing else on the
// machine is readable.

// FileTable is the agent's attached paths: virtual → real directory. It
// has its own lock (Mesos' FilesProcess is an actor of its own): the agent
// attaches from its goroutine, HTTP handlers resolve from theirs.
type FileTable struct {
	mu    sync.RWMutex
	paths map[string]string
	order []string // attach order, to forget the oldest past maxAttached
}

// maxAttached bounds the table: an agent that ran more executors than
// this forgets the oldest sandboxes (Mesos forgets them when it
// garbage-collects the directories).
const maxAttached = 20000

// NewFileTable returns an empty table.
func NewFileTable() *FileTable { return &FileTable{paths: map[string]string{}} }

func (f *FileTable) attach(real, virtual string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[virtual]; !ok {
		f.order = append(f.order, virtual)
	}
	f.paths[virtual] = real
	for len(f.order) > maxAttached {
		delete(f.paths, f.order[0])
		f.order = f.order[1:]
	}
}

// attachSandbox makes an executor's run directory readable, as Mesos'
// Agent does when it launches (or recovers) the executor.
func (f *FileTable) attachSandbox(sandbox, fwID, execID string) {
	f.attach(sandbox, sandbox)
	f.attach(sandbox, path.Join("/frameworks", fwID, "executors", execID, "runs", "latest"))
}

// errInaccessible is a path that resolves outside its attached directory.
type errInaccessible string

func (e errInaccessible) Error() string { return string(e) }

// resolve maps a virtual path to a real one: the longest attached prefix,
// then the rest of the path, canonicalised and kept inside the prefix's
// directory. "" with a nil error is Not Found.
func (f *FileTable) resolve(p string) (string, error) {
	tokens := strings.Split(strings.TrimRight(p, "/"), "/")
	f.mu.RLock()
	defer f.mu.RUnlock()
	for n := len(tokens); n > 0; n-- {
		prefix := strings.Join(tokens[:n], "/")
		dir, ok := f.paths[prefix]
		if !ok {
			continue
		}
		suffix := strings.Join(tokens[n:], "/")
		st, err := os.Stat(dir)
		if err != nil {
			return "", nil
		}
		if !st.IsDir() {
			if suffix != "" {
				return "", nil
			}
			return dir, nil
		}
		full := filepath.Join(dir, suffix)
		real, err := filepath.EvalSymlinks(full)
		if err != nil {
			return "", nil
		}
		base, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", nil
		}
		if real != base && !strings.HasPrefix(real, base+"/") {
			return "", errInaccessible(fmt.Sprintf("'%s' is inaccessible", full))
		}
		return real, nil
	}
	return "", nil
}

// filesReadCap is Mesos' cap on one read: 16 pages.
var filesReadCap = int64(os.Getpagesize() * 16)

type filesHTTP struct{ files *FileTable }

func (h filesHTTP) target(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		wire.WriteError(w, &wire.Error{Status: http.StatusMethodNotAllowed, Text: "Expecting 'GET', received '" + r.Method + "'"})
		return "", false
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		wire.WriteError(w, wire.BadRequest("Expecting 'path=value' in query.\n"))
		return "", false
	}
	real, err := h.files.resolve(p)
	if err != nil {
		wire.WriteError(w, wire.BadRequest("%v.\n", err))
		return "", false
	}
	if real == "" {
		wire.WriteError(w, &wire.Error{Status: http.StatusNotFound})
		return "", false
	}
	return real, true
}

// open opens the file a request names for what ("read", "download"),
// answering Mesos' errors: not a directory, and it must open.
func (h filesHTTP) open(w http.ResponseWriter, r *http.Request, what string) (*os.File, os.FileInfo, bool) {
	real, ok := h.target(w, r)
	if !ok {
		return nil, nil, false
	}
	file, err := os.Open(real)
	var st os.FileInfo
	if err == nil {
		if st, err = file.Stat(); err != nil {
			file.Close()
		}
	}
	switch {
	case err != nil:
		wire.WriteError(w, &wire.Error{Status: http.StatusInternalServerError, Text: fmt.Sprintf("Failed to open file at '%s': %v.\n", real, err)})
		return nil, nil, false
	case st.IsDir():
		file.Close()
		wire.WriteError(w, wire.BadRequest("Cannot %s a directory.\n", what))
		return nil, nil, false
	}
	return file, st, true
}

// read is /files/read?path=P[&offset=O][&length=L]: {"data", "offset"}.
// Without an offset it answers the file's size as the offset and no data
// (how Mesos' UI starts tailing); a read is capped at 16 pages.
func (h filesHTTP) read(w http.ResponseWriter, r *http.Request) {
	offset, ok := queryInt(w, r, "offset")
	if !ok {
		return
	}
	length, ok := queryInt(w, r, "length")
	if !ok {
		return
	}
	file, st, ok := h.open(w, r, "read")
	if !ok {
		return
	}
	defer file.Close()
	real, size := file.Name(), st.Size()
	if offset < 0 {
		offset = size
	}
	if length < 0 {
		length = size - offset
	}
	length = min(length, filesReadCap)
	data := []byte{}
	if offset < size {
		buf := make([]byte, max(length, 0))
		n, err := file.ReadAt(buf, offset)
		if err != nil && err != io.EOF {
			wire.WriteError(w, &wire.Error{Status: http.StatusInternalServerError, Text: fmt.Sprintf("Failed to read file at '%s': %v", real, err)})
			return
		}
		data = buf[:n]
	} else {
		offset = size
	}
	body, _ := json.Marshal(struct {
		Data   string `json:"data"`
		Offset int64  `json:"offset"`
	}{string(data), offset})
	api.WriteJSON(w, body)
}

// queryInt is an integer query parameter, -1 when absent; a bad one is
// answered 400 as Mesos does.
func queryInt(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	q := r.URL.Query()
	if !q.Has(name) {
		return -1, true
	}
	n, err := strconv.ParseInt(q.Get(name), 10, 64)
	if err != nil {
		wire.WriteError(w, wire.BadRequest("Failed to parse %s: Failed to convert '%s' to number.\n", name, q.Get(name)))
		return 0, false
	}
	return n, true
}

// browse is /files/browse?path=P: the directory's entries, sorted by path,
// as Mesos lists them.
func (h filesHTTP) browse(w http.ResponseWriter, r *http.Request) {
	real, ok := h.target(w, r)
	if !ok {
		return
	}
	entries, _ := os.ReadDir(real)
	type info struct {
		GID   string  `json:"gid"`
		Mode  string  `json:"mode"`
		MTime float64 `json:"mtime"`
		NLink int     `json:"nlink"`
		Path  string  `json:"path"`
		Size  int64   `json:"size"`
		UID   string  `json:"uid"`
	}
	out := []info{}
	p := r.URL.Query().Get("path")
	for _, e := range entries {
		st, err := e.Info()
		if err != nil {
			continue
		}
		fi := info{Mode: st.Mode().String(), MTime: float64(st.ModTime().UnixNano()) / float64(time.Second),
			Path: path.Join(p, e.Name()), Size: st.Size()}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			fi.UID, fi.GID, fi.NLink = userName(sys.Uid), groupName(sys.Gid), int(sys.Nlink)
		}
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	body, _ := json.Marshal(out)
	api.WriteJSON(w, body)
}

// download is /files/download?path=P: the file's bytes.
func (h filesHTTP) download(w http.ResponseWriter, r *http.Request) {
	file, st, ok := h.open(w, r, "download")
	if !ok {
		return
	}
	defer file.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename="+filepath.Base(file.Name()))
	http.ServeContent(w, r, "", st.ModTime(), file)
}

// userName and groupName are how Mesos lists owners: by name, else the
// number.
func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}
