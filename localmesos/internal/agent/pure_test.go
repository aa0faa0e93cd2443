package agent

import (
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos/internal/api"
)

func TestMesosDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{5 * time.Second: "5secs", 15 * time.Minute: "15mins", 2 * time.Second: "2secs",
		100 * time.Millisecond: "100ms", 90 * time.Second: "1.5mins", 7 * 24 * time.Hour: "1weeks"} {
		if got := api.MesosDuration(d); got != want {
			t.Errorf("mesosDuration(%v) = %s, want %s", d, got, want)
		}
		if back, err := parseMesosDuration(want); err != nil || back != d {
			t.Errorf("parseMesosDuration(%s) = %v, %v", want, back, err)
		}
	}
}
