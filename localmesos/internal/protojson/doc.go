// Package protojson converts Mesos v1 protobuf messages (the gogo-generated
// types of mesos-go) to and from JSON exactly as a Mesos 1.11 master and agent
// do: declaration-order fields, enum names, doubles that always carry a
// fraction ("15.0"), 64-bit integers as numbers, base64 bytes, unknown fields
// ignored, an unknown enum name left unset, and every missing required field
// reported by path. mesos-go's own JSON codec (ffjson) differs in number
// formatting and never reports missing required fields, hence this package.
package protojson
