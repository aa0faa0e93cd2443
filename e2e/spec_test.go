package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// pipeline describes the demo pipeline the tests run: feeder → encryptor ×N
// → printer, every service the `tiltai demo` one unless EncryptorCommand
// says otherwise.
type pipeline struct {
	Rate          int      // feeder messages per second
	Encryptors    int      // encryptor instances
	EncryptorArgs []string // extra encryptor arguments (a change replaces its tasks)
	BackoffInit   string   // encryptor relaunch backoff (default 1s)
	BackoffFactor float64  // (default 1.15)
	// EncryptorCommand is the encryptor's program and first arguments
	// (default tiltai demo encryptor), run with EncryptorEnv.
	EncryptorCommand []string
	EncryptorEnv     map[string]string
	// EncryptorImage and PrinterImage run those services in an image, by
	// the image's /usr/local/bin/SERVICE (which ends in `tiltai demo
	// SERVICE`); "" runs them on the agent's file system.
	EncryptorImage, PrinterImage string
	// PrinterByEntrypoint leaves the printer's command out: its image's
	// ENTRYPOINT runs it.
	PrinterByEntrypoint bool
	// Constraints per service, as a YAML flow list
	// (`[[hostname, UNIQUE]]`); none when empty.
	Constraints map[string]string
}

func (p pipeline) spec() string {
	backoff := ""
	if p.BackoffInit != "" {
		backoff = fmt.Sprintf("\n    backoff: {initial: %s, factor: %g, max: 1m}", p.BackoffInit, p.BackoffFactor)
	}
	enc := p.EncryptorCommand
	if enc == nil {
		enc = []string{"tiltai", "demo", "encryptor"}
	}
	encArgs := strings.Join(append(slices.Clone(enc[1:]), p.EncryptorArgs...), ", ")
	env := ""
	for _, k := range slices.Sorted(maps.Keys(p.EncryptorEnv)) {
		env += fmt.Sprintf("%s: %q, ", k, p.EncryptorEnv[k])
	}
	if env != "" {
		env = "\n    env: {" + strings.TrimSuffix(env, ", ") + "}"
	}
	encCmd := enc[0]
	if p.EncryptorImage != "" {
		encCmd = "/usr/local/bin/encryptor\n    image: " + p.EncryptorImage
		encArgs = strings.Join(p.EncryptorArgs, ", ")
	}
	printerCmd, printerArgs := "command: tiltai", "[demo, printer, --report, 200ms]"
	if p.PrinterImage != "" {
		printerCmd, printerArgs = "image: "+p.PrinterImage+"\n    command: /usr/local/bin/printer", "[--report, 200ms]"
		if p.PrinterByEntrypoint {
			printerCmd = "image: " + p.PrinterImage
		}
	}
	s := fmt.Sprintf(`version: 1
services:
  feeder:
    command: tiltai
    args: [demo, feeder, --rate, %d, --size, 64]
    cpus: 0.05
    mem: 32
    kill_grace_period: 15s
    gates:
      plaintext: push
  encryptor:
    command: %s%s
    args: [%s]
    instances: %d
    cpus: 0.05
    mem: 32
    kill_grace_period: 15s%s
    gates:
      plaintext: pull
      ciphertext: push
  printer:
    %s
    args: %s
    cpus: 0.05
    mem: 32
    gates:
      ciphertext: pull
links:
  - from: feeder.plaintext
    to: encryptor.plaintext
  - from: encryptor.ciphertext
    to: printer.ciphertext
`, p.Rate, encCmd, env, encArgs, p.Encryptors, backoff, printerCmd, printerArgs)
	for _, svc := range []string{"feeder", "encryptor", "printer"} {
		if c := p.Constraints[svc]; c != "" {
			s = strings.Replace(s, "  "+svc+":\n", "  "+svc+":\n    constraints: "+c+"\n", 1)
		}
	}
	return strings.ReplaceAll(s, "\t", "  ")
}
