// Package linkvocab is the vocabulary the link spec and the gates share:
// the messaging patterns and which end of a link each may be, gate
// directions, the gate-name rule, and the limits on gates and peers. One
// definition, so linkspec (what the operator writes) and gate/control
// (what a service opens and is sent) cannot disagree. It is a leaf: it
// imports nothing but the standard library, and both packages re-export
// its names.
package linkvocab
