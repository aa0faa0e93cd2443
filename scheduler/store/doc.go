// Package store keeps the scheduler's state: Bolt, a bbolt file where each
// batch is one fsynced transaction, and Mem, in memory for tests and
// throwaway runs. Both satisfy scheduler.Store (Load, Apply, Close), as
// does the ZooKeeper store of internal/zkha that a leader uses under HA.
package store
