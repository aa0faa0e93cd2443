package console

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the page's files are served.
const Prefix = "/console/"

// Handler serves the page at "/" (any path not under Prefix) and its
// files under Prefix. Nothing it serves holds data: the page reads the
// API with the operator's token, so it is served without one.
func Handler() http.Handler {
	files, _ := fs.Sub(assets, "assets")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if rest, ok := strings.CutPrefix(r.URL.Path, Prefix); ok {
			name = path.Clean(rest)
		}
		data, err := fs.ReadFile(files, name)
		if err != nil || name == "." {
			http.NotFound(w, r)
			return
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		// Small files, and a new binary must show its page at once.
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method != http.MethodHead {
			w.Write(data)
		}
	})
}

// WantsPage reports whether a request for "/" is a browser's (HTML before
// JSON in Accept) rather than a tool's, which gets the JSON index.
func WantsPage(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	html, json := strings.Index(accept, "text/html"), strings.Index(accept, "application/json")
	return html >= 0 && (json < 0 || html < json)
}

// Policy is the Content-Security-Policy of every answer: the page's own
// files only, no inline script or style, no eval, never framed.
const Policy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Secure adds the security headers to every answer of h and refuses
// cross-origin writes from browsers (a page elsewhere posting to a
// scheduler without a token); tools send no Origin and are not affected.
func Secure(h http.Handler) http.Handler {
	h = http.NewCrossOriginProtection().Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", Policy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}
