// Package res is the resource arithmetic of localmesos: scalars (cpus, mem,
// disk, …) in exact thousandths as Mesos keeps them, and ranges (ports). It
// parses the agent's --resources flag, converts to and from Mesos Resource
// protobufs (refusing what localmesos does not implement: reservations,
// volumes, revocable or shared resources, resource providers), and prints
// resources the way Mesos' messages and /state do. Pure: no IO.
package res
