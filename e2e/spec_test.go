package e2e

import (
	"fmt"
	"strings"
)

// pipeline describes the demo pipeline the tests run: feeder → encryptor ×N
// → printer, every service the `tiltai demo` one.
type pipeline struct {
	Rate          int      // feeder messages per second
	Encryptors    int      // encryptor instances
	EncryptorArgs []string // extra encryptor arguments (a change replaces its tasks)
	BackoffInit   string   // encryptor relaunch backoff (default 1s)
	BackoffFactor float64  // (default 1.15)
	// EncryptorImage and PrinterImage run those services in an image, by
	// the image's /usr/local/bin/SERVICE (which ends in `tiltai demo
	// SERVICE`); "" runs them on the agent's file system.
	EncryptorImage, PrinterImage string
}

func (p pipeline) spec() string {
	backoff := ""
	if p.BackoffInit != "" {
		backoff = fmt.Sprintf("\n    backoff: {initial: %s, factor: %g, max: 1m}", p.BackoffInit, p.BackoffFactor)
	}
	encArgs := ""
	for _, a := range p.EncryptorArgs {
		encArgs += ", " + a
	}
	encCmd, encArgv := "command: tiltai", "[demo, encryptor"+encArgs+"]"
	if p.EncryptorImage != "" {
		encCmd, encArgv = "image: "+p.EncryptorImage+"\n    command: /usr/local/bin/encryptor", "["+strings.TrimPrefix(encArgs, ", ")+"]"
	}
	printerCmd, printerArgs := "command: tiltai", "[demo, printer, --report, 200ms]"
	if p.PrinterImage != "" {
		printerCmd, printerArgs = "image: "+p.PrinterImage+"\n    command: /usr/local/bin/printer", "[--report, 200ms]"
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
    %s
    args: %s
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
`, p.Rate, encCmd, encArgv, p.Encryptors, backoff, printerCmd, printerArgs)
	return strings.ReplaceAll(s, "\t", "  ")
}
