// Package pipeline holds the demo services of the original Tiltai: a Feeder
// that sends sequence-numbered messages on its out-gate "plaintext", an
// Encryptor that hashes each message it receives on "plaintext" (sha256) and
// passes it on, origin and sequence kept, on "ciphertext", and a Printer that
// receives on "ciphertext" and counts per origin what arrived, what arrived
// twice and what is missing, printing a summary line periodically and
// publishing the counts as application counters over the control socket.
// The same functions run under Mesos (tiltai demo …, gates from the
// environment) and in the static example (examples/static).
package pipeline
