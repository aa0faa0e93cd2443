// Package examples holds the demo link specs, embedded so that `tiltai up`
// runs the pipeline demo from any directory. The demo services themselves
// are in examples/pipeline (run as `tiltai demo feeder|encryptor|printer`).
package examples

import _ "embed"

// Pipeline is examples/pipeline.yaml: feeder → encryptor ×3 → printer.
//
//go:embed pipeline.yaml
var Pipeline []byte
