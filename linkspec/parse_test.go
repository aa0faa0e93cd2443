package linkspec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/tiltai/tiltai/internal/scripttest"
)

// TestValidateGolden parses every file in testdata/validate and compares the
// problems it reports with the file's .out golden (rewrite with -rewrite).
func TestValidateGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/validate/*")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".out") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			spec, probs := Parse(filepath.Base(f), data)
			var b strings.Builder
			for _, p := range probs {
				b.WriteString(p.String() + "\n")
			}
			if probs.Err() == nil {
				if spec == nil {
					t.Fatal("no errors but no spec")
				}
				b.WriteString("ok\n")
			} else if spec != nil {
				t.Fatal("errors but a spec was returned")
			}
			golden := f + ".out"
			if scripttest.Rewrite() {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden %s (run go test -rewrite): %v", golden, err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("problems differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d validation cases", n)
	}
}

func TestOversizedSpec(t *testing.T) {
	data := bytes.Repeat([]byte("# padding\n"), MaxSpecBytes/10+1)
	spec, probs := Parse("big.yaml", data)
	if spec != nil || len(probs) != 1 || !strings.Contains(probs[0].Msg, "larger than 1048576 bytes") {
		t.Fatalf("got %v", probs)
	}
	// The reader variant stops reading after the limit.
	_, probs = ParseReader("big.yaml", bytes.NewReader(append(data, make([]byte, 10<<20)...)))
	if len(probs) != 1 || !strings.Contains(probs[0].Msg, "larger than") {
		t.Fatalf("got %v", probs)
	}
}

func TestDefaults(t *testing.T) {
	spec, probs := Parse("x.yaml", []byte("services:\n  a:\n    command: run\n"))
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	a := spec.Services["a"]
	want := defaultService("a")
	want.Command = "run"
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got %+v\nwant %+v", a, want)
	}
	if spec.Version != 1 {
		t.Fatalf("version %d", spec.Version)
	}
}

// A parsed spec written as JSON parses back to the same spec, so what the
// scheduler stores and serves is what was submitted.
func TestJSONRoundTrip(t *testing.T) {
	for _, f := range []string{"../examples/pipeline.yaml", "testdata/validate/ok-pipeline.yaml", "testdata/validate/anchors-ok.yaml", "testdata/validate/image-ok.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, f, data)
	}
}

func roundTrip(t testing.TB, name string, data []byte) {
	spec, probs := Parse(name, data)
	if probs.Err() != nil {
		return
	}
	out, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	back, probs := Parse(name+".json", out)
	if err := probs.Err(); err != nil {
		t.Fatalf("%s: the JSON form does not parse: %v\n%s", name, err, out)
	}
	back.locs, spec.locs, back.file, spec.file = nil, nil, "", ""
	if !reflect.DeepEqual(spec, back) {
		t.Fatalf("%s: round trip differs\n%#v\n%#v", name, spec, back)
	}
}

func TestProblemString(t *testing.T) {
	cases := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Pos: Pos{3, 5}, Severity: Error, Msg: "bad", Hint: "fix it"}, "a.yaml:3:5: bad; fix it"},
		{Problem{File: "a.yaml", Pos: Pos{3, 5}, Severity: Warning, Msg: "odd"}, "a.yaml:3:5: warning: odd"},
		{Problem{Path: "services.a.instances", Severity: Error, Msg: "bad"}, "services.a.instances: bad"},
		{Problem{File: "a.yaml", Severity: Error, Msg: "too big", Hint: "split"}, "a.yaml: too big; split"},
	}
	for _, c := range cases {
		if got := c.p.String(); got != c.want {
			t.Errorf("got %q want %q", got, c.want)
		}
	}
}

// Validate works on specs changed in code, e.g. scaled through the API.
func TestValidateAfterChange(t *testing.T) {
	data, _ := os.ReadFile("../examples/pipeline.yaml")
	spec, probs := Parse("pipeline.yaml", data)
	if probs.Err() != nil {
		t.Fatal(probs)
	}
	c := spec.Clone()
	c.Services["encryptor"].Instances = MaxInstances + 1
	probs = c.Validate()
	if len(probs) != 1 || probs[0].String() != "pipeline.yaml:21:16: instances 10001 is out of range; use 0 to 10000 (0 keeps the service defined but stopped)" {
		t.Fatalf("got %v", probs)
	}
	if spec.Services["encryptor"].Instances != 3 {
		t.Fatal("Clone shares services")
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: Duration(1e9), Factor: 1.15, Max: Duration(3e9)}
	cases := map[int]string{0: "0s", 1: "1s", 2: "1.15s", 3: "1.3225s", 20: "3s"}
	for n, want := range cases {
		if got := b.Delay(n).String(); got != want {
			t.Errorf("Delay(%d) = %s, want %s", n, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/validate/*")
	files = append(files, "../examples/pipeline.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil && !strings.HasSuffix(file, ".out") {
			f.Add(filepath.Base(file), data)
		}
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		spec, probs := Parse(name, data)
		for _, p := range probs {
			if p.Msg == "" || p.Severity == "" {
				t.Fatalf("empty problem: %+v", p)
			}
			if p.Severity == Error && p.Hint == "" {
				t.Fatalf("error without a hint: %s", p)
			}
		}
		if spec == nil {
			return
		}
		if err := spec.Validate().Err(); err != nil {
			t.Fatalf("Parse accepted a spec Validate refuses: %v", err)
		}
		roundTrip(t, name, data)
		// A valid spec must plan without trouble.
		PlanOnce(spec, nil, nil, 1, epoch, Options{})
	})
}

// ParseWith answers at once when its context ends, even while the YAML
// parser, which cannot be interrupted, is still at work.
func TestParseWithStopsMidParse(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	real := parseYAML
	parseYAML = func(data []byte) (*ast.File, error) {
		close(entered)
		<-release
		return real(data)
	}
	defer func() { parseYAML = real }()

	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		spec  *Spec
		probs Problems
	}
	done := make(chan result, 1)
	go func() {
		spec, probs := ParseWith(ctx, "slow.yaml", []byte("services: {}\n"), ParseOptions{})
		done <- result{spec, probs}
	}()
	deadline := time.After(10 * time.Second)
	select {
	case <-entered:
	case <-deadline:
		t.Fatal("the parser was never called")
	}
	cancel()
	select {
	case res := <-done:
		if res.spec != nil || len(res.probs) != 1 || res.probs[0].String() != "slow.yaml: parsing stopped: context canceled; submit the spec again" {
			t.Fatalf("got %v %v", res.spec, res.probs)
		}
	case <-deadline:
		t.Fatal("ParseWith waited for the parser after its context ended")
	}
}

// The builder and the decoder look at the context as they go, so a parse
// whose caller has gone stops working too.
func TestParseStopsBetweenNodes(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	const services = 2000
	for i := range services {
		fmt.Fprintf(&b, "  s%d: {command: run, args: [a, b, c, d, e, f, g, h]}\n", i)
	}
	file, err := parseYAML([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&builder{ctx: ctx}).build(file.Docs[0], 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("builder: got %v, want context.Canceled", err)
	}
	root, err := (&builder{}).build(file.Docs[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{r: &reporter{locs: map[string]Pos{}}, bad: map[string]bool{}, ctx: ctx}
	decoded := 0
	for _, svc := range d.spec(root).Services {
		if svc.Command != "" {
			decoded++
		}
	}
	if decoded > checkEvery/16 {
		t.Fatalf("the decoder read %d of %d services of a cancelled parse", decoded, services)
	}
}

// The total-task limit is the scheduler's to set; its problem points at the
// largest service's instances, where lowering helps most.
func TestMaxTasks(t *testing.T) {
	data, err := os.ReadFile("../examples/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const refused = "pipeline.yaml:21:16: the spec asks for 5 tasks in all; at most 4 are allowed; lower the instances (the largest is encryptor with 3), or run the scheduler with a larger --max_tasks where it has the memory"
	for _, c := range []struct {
		max  int
		want string
	}{{0, ""}, {5, ""}, {4, refused}} {
		spec, probs := ParseWith(context.Background(), "pipeline.yaml", data, ParseOptions{MaxTasks: c.max})
		if got := probs.Errors().Error(); got != c.want {
			t.Errorf("MaxTasks %d: got %q, want %q", c.max, got, c.want)
		}
		if c.want != "" || spec == nil {
			continue
		}
		if got := spec.ValidateWith(ParseOptions{MaxTasks: 4}).Errors().Error(); got != refused {
			t.Errorf("ValidateWith: got %q, want %q", got, refused)
		}
	}
}

// A scheduler that cannot run images refuses them, located, with its reason.
func TestNoImages(t *testing.T) {
	data, err := os.ReadFile("testdata/validate/image-ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	why := "its executor binary is dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2); build tiltai with CGO_ENABLED=0 to run services in images"
	_, probs := ParseWith(context.Background(), "image-ok.yaml", data, ParseOptions{NoImages: why})
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		`image-ok.yaml:6:12: service "encryptor" runs in an image, which this scheduler cannot do: ` + why + "; run it without an image, or submit it to a scheduler that runs images",
		`image-ok.yaml:14:12: service "pinned" runs in an image, which this scheduler cannot do: ` + why + "; run it without an image, or submit it to a scheduler that runs images",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A scheduler that cannot learn an image's ENTRYPOINT and CMD refuses an
// image without a command, at the image, with its reason.
func TestImageNeedsCommand(t *testing.T) {
	data, err := os.ReadFile("testdata/validate/image-ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	why := "Mesos does not tell a custom executor its image's ENTRYPOINT or CMD"
	_, probs := ParseWith(context.Background(), "image-ok.yaml", data, ParseOptions{ImageNeedsCommand: why})
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		`image-ok.yaml:6:12: service "encryptor" has an image but no command: ` + why + "; name the executable in the image, e.g. `command: /usr/local/bin/encryptor`",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
