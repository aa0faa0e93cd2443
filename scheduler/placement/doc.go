// Package placement decides which pending tasks go on which Mesos offers: a
// pure function of the offers held, the tasks already running and the
// tasks waiting, with the time passed in. Each task goes to the offer
// whose agent runs the fewest tasks of its service, among the offers with
// room for it (task plus executor) that satisfy every one of its service's
// Marathon constraints, counting running tasks and those placed earlier in
// the same round. For every task it cannot place it says why, as counts of
// offers turned down per reason, so "waiting" can be explained to a user.
// It neither logs nor calls Mesos: a driver turns the Result into Accept
// and Decline calls.
package placement
