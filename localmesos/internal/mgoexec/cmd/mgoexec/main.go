// Command mgoexec runs the mesos-go-only test executor as a process, the
// way an agent launches a custom executor.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"

	"github.com/tiltai/tiltai/localmesos/internal/mgoexec"
)

func main() {
	cfg, err := mgoexec.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	codec := codecs.MediaTypeProtobuf
	if os.Getenv("MGOEXEC_CODEC") == "json" {
		codec = codecs.MediaTypeJSON
	}
	if err := mgoexec.Run(context.Background(), cfg, codec, os.Getenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), nil); err != nil {
		fmt.Fprintln(os.Stderr, "mgoexec:", err)
		os.Exit(1)
	}
}
