package localmesos

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/internal/imagetest"
	"github.com/tiltai/tiltai/localmesos/internal/api"
)

const imageMarker = "only in the image\n"

func needContainers(t testing.TB) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("container images need Linux and root")
	}
}

func busyboxTestImage(t testing.TB, extra ...v1.Layer) v1.Image {
	layers := append([]v1.Layer{imagetest.BusyboxLayer(t), imagetest.Layer(t, imagetest.Entry{Name: "image-only-file", Body: imageMarker})}, extra...)
	return imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "IMAGE_VAR=1"}}, layers...)
}

func imageConfig(t *testing.T, registry string) Config {
	cfg := testConfig(t)
	cfg.ImageProviders, cfg.DockerRegistry = "docker", registry
	cfg.Isolation = "filesystem/linux,docker/runtime"
	return cfg
}

// imageTask is a command task's JSON in the image (no container if "").
func imageTask(id, agentID, command, image string) string {
	container := ""
	if image != "" {
		container = fmt.Sprintf(`,"container":{"type":"MESOS","mesos":{"image":{"type":"DOCKER","docker":{"name":%q}}}}`, image)
	}
	return fmt.Sprintf(`{"name":%q,"task_id":{"value":%q},"agent_id":{"value":%q},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],"command":{"value":%q}%s}`,
		id, id, agentID, command, container)
}

// launchOn accepts the next offer with tasks (a func of the agent id) and
// returns the offer's agent id.
func launchOn(s *rawSched, tasks func(agentID string) string) string {
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[%s]}}],"filters":{"refuse_seconds":0.0}}}`,
		s.fwID, o.ID.Value, tasks(o.AgentID.Value)))
	return o.AgentID.Value
}

// terminal acknowledges updates of task until a terminal one, which it
// returns.
func (s *rawSched) terminal(task string) mesos.TaskStatus {
	s.t.Helper()
	for {
		e := s.next(scheduler.Event_UPDATE)
		s.ack(e)
		if st := e.ev.Update.Status; st.TaskID.Value == task && api.Terminal(st.GetState()) {
			return st
		}
	}
}

func sandboxOf(c *Cluster, agentID, fwID, execID string) string {
	return filepath.Join(c.cfg.WorkDir, "agents", "0", "slaves", agentID, "frameworks", fwID, "executors", execID, "runs", "latest")
}

const subscribeImages = `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"images"}}}`

func TestImageCommandTask(t *testing.T) {
	needContainers(t)
	reg := t.TempDir()
	imagetest.SaveLegacy(t, reg, "busybox-test:1", busyboxTestImage(t))
	c := startCluster(t, imageConfig(t, reg))
	s := subscribeRaw(t, c, subscribeImages)
	cmd := `cat /image-only-file; echo "sandbox=$MESOS_SANDBOX pwd=$(pwd) var=$IMAGE_VAR pid=$$"; cat /proc/self/mountinfo`
	agentID := launchOn(s, func(a string) string { return imageTask("img-1", a, cmd, "busybox-test:1") })
	if st := s.terminal("img-1"); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("img-1: %s %s %s", st.GetState(), st.GetReason(), st.GetMessage())
	}
	out, _ := os.ReadFile(filepath.Join(sandboxOf(c, agentID, s.fwID, "img-1"), "stdout"))
	for _, want := range []string{imageMarker, "sandbox=/mnt/mesos/sandbox pwd=/mnt/mesos/sandbox var=1 pid=1", "/rootfses/", " / rw", " /mnt/mesos/sandbox "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	layers, _ := filepath.Glob(filepath.Join(c.cfg.WorkDir, "store", "docker", "layers", "*"))
	if len(layers) != 2 {
		t.Fatalf("store layers: %v", layers)
	}
	before, _ := os.Stat(layers[0])

	// The second task of the image uses the store as it is.
	launchOn(s, func(a string) string { return imageTask("img-2", a, "cat /image-only-file", "busybox-test:1") })
	if st := s.terminal("img-2"); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("img-2: %s %s", st.GetState(), st.GetMessage())
	}
	if after, err := os.Stat(layers[0]); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the layer was unpacked again: %v", err)
	}
	// Rootfses go with their containers.
	waitFor(t, "the rootfses to be removed", func() bool {
		left, _ := filepath.Glob(filepath.Join(c.cfg.WorkDir, "agents", "0", "provisioner", "containers", "*"))
		return len(left) == 0
	})
}

func TestImageCustomExecutor(t *testing.T) {
	needContainers(t)
	reg := t.TempDir()
	imagetest.SaveLegacy(t, reg, "busybox-test:1", busyboxTestImage(t))
	prog := imagetest.StaticGoBinary(t, `package main

import "os"

func main() {
	b, err := os.ReadFile("/image-only-file")
	if err != nil {
		os.Exit(3)
	}
	wd, _ := os.Getwd()
	_ = os.WriteFile(os.Getenv("MESOS_SANDBOX")+"/marker", append(b, []byte("cwd="+wd+" path="+os.Getenv("PATH"))...), 0o644)
}
`)
	c := startCluster(t, imageConfig(t, reg))
	s := subscribeRaw(t, c, subscribeImages)
	agentID := launchOn(s, func(a string) string {
		return fmt.Sprintf(`{"name":"exec-img-task","task_id":{"value":"exec-img-task"},"agent_id":{"value":%q},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],`+
			`"executor":{"type":"CUSTOM","executor_id":{"value":"marker-exec"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],`+
			`"command":{"value":"$MESOS_SANDBOX/prog","uris":[{"value":%q,"executable":true}]},"container":{"type":"MESOS","mesos":{"image":{"type":"DOCKER","docker":{"name":"busybox-test:1"}}}}}}`, a, prog)
	})
	// It exits without subscribing: as in Mesos, the task fails with the
	// executor and the scheduler gets a FAILURE.
	st := s.terminal("exec-img-task")
	if st.GetState() != mesos.TASK_FAILED || st.GetReason() != mesos.REASON_EXECUTOR_TERMINATED {
		t.Fatalf("exec-img-task: %s %s %s", st.GetState(), st.GetReason(), st.GetMessage())
	}
	if f := s.next(scheduler.Event_FAILURE).ev.Failure; f.ExecutorID == nil || f.ExecutorID.Value != "marker-exec" || f.GetStatus() != 0 {
		t.Fatalf("FAILURE = %+v", f)
	}
	b, err := os.ReadFile(filepath.Join(sandboxOf(c, agentID, s.fwID, "marker-exec"), "marker"))
	if want := imageMarker + "cwd=/mnt/mesos/sandbox path=/bin"; err != nil || string(b) != want {
		t.Fatalf("marker = %q (%v), want %q", b, err, want)
	}
}

func TestImageLaunchFailures(t *testing.T) {
	needContainers(t)
	reg := t.TempDir()
	imagetest.SaveLegacy(t, reg, "evil:1", busyboxTestImage(t, imagetest.Layer(t,
		imagetest.Entry{Name: "link", Type: tar.TypeSymlink, Linkname: "/etc"}, imagetest.Entry{Name: "link/passwd"})))
	c := startCluster(t, imageConfig(t, reg))
	s := subscribeRaw(t, c, subscribeImages)
	for _, tc := range []struct{ image, message string }{
		{"busybox-missing:1", "Failed to launch container: Failed to find archive for image 'busybox-missing:1' at '" + reg + "/busybox-missing:1.tar'"},
		{"evil:1", "Failed to launch container: Failed to extract layer '"},
	} {
		launchOn(s, func(a string) string { return imageTask("t-"+tc.image, a, "true", tc.image) })
		st := s.terminal("t-" + tc.image)
		if st.GetState() != mesos.TASK_FAILED || st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED || st.GetSource() != mesos.SOURCE_AGENT ||
			!strings.HasPrefix(st.GetMessage(), tc.message) {
			t.Errorf("%s: %s %s %s %q", tc.image, st.State, st.GetReason(), st.GetSource(), st.GetMessage())
		}
	}
	launchOn(s, func(a string) string {
		return strings.Replace(imageTask("appc", a, "true", "x"), `"type":"DOCKER","docker":{"name":"x"}`, `"type":"APPC","appc":{"name":"x"}`, 1)
	})
	if st := s.terminal("appc"); st.GetMessage() != "Failed to launch container: Unsupported container image type: 1" {
		t.Errorf("appc: %s %q", st.GetState(), st.GetMessage())
	}
}

func TestImageFromRegistry(t *testing.T) {
	needContainers(t)
	url := imagetest.Registry(t)
	imagetest.Push(t, url, "team/busybox-test:1", busyboxTestImage(t))
	c := startCluster(t, imageConfig(t, url))
	s := subscribeRaw(t, c, subscribeImages)
	agentID := launchOn(s, func(a string) string { return imageTask("reg-1", a, "cat /image-only-file", "team/busybox-test:1") })
	if st := s.terminal("reg-1"); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("reg-1: %s %s", st.GetState(), st.GetMessage())
	}
	if out, _ := os.ReadFile(filepath.Join(sandboxOf(c, agentID, s.fwID, "reg-1"), "stdout")); string(out) != imageMarker {
		t.Fatalf("stdout = %q", out)
	}
	launchOn(s, func(a string) string { return imageTask("reg-2", a, "true", "team/missing:1") })
	if st := s.terminal("reg-2"); st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
		!strings.HasPrefix(st.GetMessage(), "Failed to launch container: Failed to pull image 'team/missing:1' from '"+url+"'") {
		t.Fatalf("reg-2: %s %q", st.GetReason(), st.GetMessage())
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
