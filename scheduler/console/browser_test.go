package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's headless Chromium with chromedp. They
// wait on conditions in the page (chromedp.Poll) with deadlines, never on
// time. A failed test leaves a screenshot, and its path is printed.

var (
	updateShot = flag.Bool("update-screenshot", false, "write docs/console.png from TestConsoleLive")
	shots      = flag.Bool("shots", false, "save a screenshot at the end of every browser test, not only of failed ones")
	chromePath = flag.String("chromium", envOr("TILTAI_CHROMIUM", "/usr/bin/chromium"), "the Chromium binary for the browser tests")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// page is one browser tab.
type page struct {
	t   testing.TB
	ctx context.Context
}

// newPage starts a headless Chromium of its own (a temporary profile) and
// opens a tab; both end with the test. Uncaught exceptions in the page fail
// the test.
func newPage(t testing.TB) *page {
	t.Helper()
	if _, err := os.Stat(*chromePath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Chromium at %s (apt-get install chromium): %v", *chromePath, err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium, or -chromium PATH)", *chromePath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(*chromePath),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1500),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Errorf("exception in the page at %s:%d: %s", d.URL, d.LineNumber, msg)
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	}))
	p := &page{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("cannot start Chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() || *shots {
			p.screenshot(failedShot(t))
		}
		cancelTab()
		cancelAlloc()
	})
	return p
}

func failedShot(t testing.TB) string {
	dir := filepath.Join(os.TempDir(), "tiltai-console-shots")
	os.MkdirAll(dir, 0o755)
	return filepath.Join(dir, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+".png")
}

func (p *page) screenshot(path string) {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("cannot take a screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("cannot save the screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

// run runs actions with a deadline.
func (p *page) run(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// wait waits until the JavaScript expression is truthy; at the deadline it
// fails the test with describe's value (an expression too).
func (p *page) wait(what string, timeout time.Duration, expr, describe string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		var got string
		if describe != "" {
			dctx, dcancel := context.WithTimeout(p.ctx, 5*time.Second)
			got, _ = chromedp.Run(dctx, chromedp.Evaluate[string](describe))
			dcancel()
		}
		p.t.Fatalf("waiting for %s: %v; the page shows: %s", what, err, got)
	}
}

// eval evaluates expr in the page (awaiting it when it is a promise).
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// setValue sets an input's value as typing would (an input event follows).
func (p *page) setValue(sel, value string) {
	p.t.Helper()
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %q; el.dispatchEvent(new Event('input', {bubbles: true})); return true })()`, sel, value)
	eval[bool](p, js)
}

func (p *page) open(url string) {
	p.t.Helper()
	p.run("open "+url, 30*time.Second, chromedp.Navigate(url))
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.run("click "+sel, 10*time.Second, chromedp.Click(chromedp.CSS(sel)))
}

// cleanPage checks that no script the page did not bring ran and that the
// policy refused nothing the page itself does.
func (p *page) cleanPage() {
	p.t.Helper()
	res := eval[struct {
		Pwned      any `json:"pwned"`
		Images     int `json:"images"`
		Scripts    int `json:"scripts"`
		Violations int `json:"violations"`
	}](p, `({pwned: window.__pwned ?? null, images: document.images.length, scripts: document.scripts.length, violations: window.__console.cspViolations})`)
	if res.Pwned != nil || res.Images != 0 || res.Scripts != 1 || res.Violations != 0 {
		p.t.Fatalf("the page ran or loaded what it should not: %+v", res)
	}
}

// Expressions the tests wait on.
const (
	jsNodes      = `document.querySelectorAll('#graph g.node').length`
	jsEdges      = `document.querySelectorAll('#graph path[data-kind=edge]').length`
	jsGraphText  = `document.getElementById('graph').textContent`
	jsNotice     = `document.getElementById('notice').textContent + ' | ' + document.getElementById('conn').textContent`
	jsDetailText = `document.getElementById('detail').textContent`
)

func nodeCounts(service string) string {
	return fmt.Sprintf(`(document.querySelector('#graph g.node[data-service=%q] [data-kind=counts]') || {}).textContent`, service)
}
