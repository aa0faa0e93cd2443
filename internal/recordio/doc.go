// Package recordio reads and writes Mesos RecordIO framing: each record is
// its length as ASCII decimal, a line feed, then exactly that many bytes, with
// nothing after them. The reader bounds the size of a record so that a
// hostile stream cannot make it allocate without limit. The embedded Mesos
// (localmesos) and the executor's agent client both use it.
package recordio
