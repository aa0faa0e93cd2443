// Package uuid makes random (version 4, RFC 9562) UUIDs from crypto/rand,
// in the two forms Mesos uses: 16 bytes (TaskStatus.uuid) and the
// canonical text (stream and container IDs).
package uuid
