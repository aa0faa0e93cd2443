// Package containerizer runs executors in Docker images the way Mesos 1.11's
// Mesos containerizer does with --image_providers=docker and
// --isolation=filesystem/linux,docker/runtime: a store pulls an image from a
// directory of `docker save` tarballs or from a Docker Registry v2 and keeps
// each layer unpacked once, by content digest; the copy backend makes a
// container rootfs from the layers (applying whiteouts); the launcher starts
// the executor in new mount, pid and uts namespaces with that rootfs as /,
// the sandbox at /mnt/mesos/sandbox, a fresh /proc, a minimal /dev and the
// host's network. The namespace setup runs in this very binary, re-executed
// with a hidden first argument (see Init).
//
// Layer archives are hostile input: unpacking refuses any entry that would
// write outside the layer directory and bounds their size and count.
package containerizer
