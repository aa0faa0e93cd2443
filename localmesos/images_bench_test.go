package localmesos

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/internal/imagetest"
	"github.com/tiltai/tiltai/localmesos/internal/api"

	"github.com/tiltai/tiltai/internal/uuid"
)

// BenchmarkTaskStart is the latency from ACCEPT to TASK_RUNNING of one
// command task: on the host (plain), in an image whose layers must be
// unpacked first (image-cold) and in an image already in the store
// (image-warm: provisioning, the copy backend and the namespace setup).
func BenchmarkTaskStart(b *testing.B) {
	needContainers(b)
	reg := b.TempDir()
	imagetest.SaveLegacy(b, reg, "busybox-test:1", busyboxTestImage(b))
	cfg := Config{AllocationInterval: 10 * time.Millisecond, WorkDir: b.TempDir(),
		ImageProviders: "docker", DockerRegistry: reg, Isolation: "filesystem/linux,docker/runtime"}
	c := startCluster(b, cfg)
	s := subscribeRaw(b, c, subscribeImages)
	store := filepath.Join(cfg.WorkDir, "store", "docker")
	for _, bc := range []struct {
		name, image string
		cold        bool
	}{{"plain", "", false}, {"image-cold", "busybox-test:1", true}, {"image-warm", "busybox-test:1", false}} {
		b.Run(bc.name, func(b *testing.B) {
			s.t = b
			var total time.Duration
			for i := 0; i < b.N; i++ {
				if bc.cold {
					if err := os.RemoveAll(store); err != nil {
						b.Fatal(err)
					}
				}
				id := bc.name + "-" + uuid.New().String()
				o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
				start := time.Now()
				s.mustCall(`{"type":"ACCEPT","framework_id":{"value":"` + s.fwID + `"},"accept":{"offer_ids":[{"value":"` + o.ID.Value +
					`"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[` + imageTask(id, o.AgentID.Value, "true", bc.image) + `]}}],"filters":{"refuse_seconds":0.0}}}`)
				for {
					e := s.next(scheduler.Event_UPDATE)
					s.ack(e)
					st := e.ev.Update.Status
					if st.GetState() == mesos.TASK_RUNNING {
						total += time.Since(start)
					}
					if api.Terminal(st.GetState()) {
						if st.GetState() != mesos.TASK_FINISHED {
							b.Fatalf("%s: %s %s", id, st.GetState(), st.GetMessage())
						}
						break
					}
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
		})
	}
}
