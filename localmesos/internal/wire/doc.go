// Package wire is the HTTP edge shared by the localmesos master and agents:
// content negotiation with Mesos' status codes and error texts, decoding of
// call bodies in either codec (application/json, application/x-protobuf),
// and event streams that frame records in RecordIO and interleave
// heartbeats. A stream's queue is bounded, so a client that stops reading is
// cut off rather than growing memory without limit.
package wire
