// Package gate is the library a Tiltai service imports: named in-process
// network interfaces ("gates") whose peers are wired from outside the code.
// A Hub owns a service's gates; it opens them by name as declared (by the
// TILTAI_GATE_* environment or Config.Gates), learns each out-gate's peers
// from a Governor (the executor's control socket, static endpoints, or
// in-memory for tests) as versioned snapshots, and rewires live: new peers are
// dialled in the background with fast retry, removed peers are drained before
// their connection closes. Each peer has its own ZMTP connection (handshake by
// zmq4), routing is the gate's: push load-balances over ready peers and
// blocks when none can take more, pub fans out with a bounded queue per
// subscriber, req/rep pairs requests with replies, pair is one-to-one. A plain
// ZeroMQ peer (zmq4, libzmq) interoperates; between two gates, messages travel
// in batched frames with receipt acknowledgements, so a peer that dies costs
// re-routing rather than loss. Nothing is dropped silently: every loss is
// counted in the gate's counters, which the executor reads.
//
// Send copies the message into the batch being built for the peers, so the
// caller may reuse its buffers at once; SendBatch and RecvBatch move many
// messages per call at the speed of the wire. A message from Recv is the
// caller's for good; those in a Batch are valid until the Batch is reused
// or released (copy with Message.Clone to keep one), which lets receive
// buffers be recycled. See docs/gates.md.
package gate
