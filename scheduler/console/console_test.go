package console_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tiltai/tiltai/scheduler/console"
)

// The page's own files keep to the policy by construction: no inline
// script or style in the HTML, and no script that turns strings into
// markup or code. (The browser tests check that nothing is refused.)
func TestAssetsAreCSPClean(t *testing.T) {
	html, err := os.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]*regexp.Regexp{
		"inline script":          regexp.MustCompile(`<script[^>]*>\s*[^<\s]`),
		"script without src":     regexp.MustCompile(`<script(?:[^>s]|s[^r]|sr[^c])*>`),
		"inline style sheet":     regexp.MustCompile(`<style`),
		"style or on* attribute": regexp.MustCompile(`\s(?:style|on[a-z]+)\s*=`),
		"off-site resource":      regexp.MustCompile(`(?:href|src)\s*=\s*"(?:[a-z]+:)?//`),
	}
	for what, re := range checks {
		if m := re.Find(html); m != nil {
			t.Errorf("index.html has %s: %q", what, m)
		}
	}
	err = fs.WalkDir(os.DirFS("assets"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".js") {
			return err
		}
		src, err := os.ReadFile("assets/" + p)
		if err != nil {
			return err
		}
		// The SVG namespace is a name, not a place anything is loaded from.
		code := strings.ReplaceAll(string(src), "'http://www.w3.org/2000/svg'", "")
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", "setAttribute('on", "http://", "https://", "import("} {
			if strings.Contains(code, bad) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(console.Secure(console.Handler()))
	defer srv.Close()
	cases := []struct {
		path  string
		code  int
		ctype string
	}{
		{"/", 200, "text/html"},
		{"/anything", 200, "text/html"},
		{"/console/app.js", 200, "text/javascript"},
		{"/console/style.css", 200, "text/css"},
		{"/console/../console/app.js", 404, ""}, // fs paths refuse ".."
		{"/console/%2e%2e/doc.go", 404, ""},
		{"/console/", 404, ""},
		{"/console/missing.js", 404, ""},
	}
	for _, c := range cases {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("%s: %d %s, want %d %s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.code, c.ctype)
		}
		if resp.Header.Get("Content-Security-Policy") != console.Policy || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: missing security headers: %v", c.path, resp.Header)
		}
	}
}

func TestWantsPage(t *testing.T) {
	for accept, want := range map[string]bool{
		"": false, "*/*": false, "application/json": false, "text/html": true,
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": true,
		"application/json, text/html":                                     false,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if got := console.WantsPage(r); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}
