#!/usr/bin/env bash
# scripts/vagrant-demo.sh — the Vagrant demo cluster, from the host.
#
#   scripts/vagrant-demo.sh [up|demo|ssh|destroy|all]    (default: all = up, then demo)
#
#   up       build tiltai for linux/amd64 into bin/, start the VM and provision
#            ZooKeeper, Mesos (master and two agents) and Marathon
#            (scripts/provision-cluster.sh)
#   demo     copy the current bin/tiltai into the VM, then run
#            scripts/demo-verify.sh there: deploy the scheduler through
#            Marathon, submit examples/pipeline.yaml, show the tasks
#   ssh      a shell in the VM
#   destroy  remove the VM
#
# Needs Vagrant with VirtualBox or libvirt, and Go to build the binary. The
# VM takes 2 CPUs and 6 GiB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."

build() {
	echo "==> building bin/tiltai for linux/amd64"
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o bin/tiltai ./cmd/tiltai
}

vm() { (cd vagrant && vagrant "$@"); }

up() {
	build
	vm up --provision
}

demo() {
	build
	vm rsync
	vm ssh -c 'sudo install -m 0755 /tiltai/bin/tiltai /usr/local/bin/tiltai && cd /tiltai && TILTAI=/usr/local/bin/tiltai scripts/demo-verify.sh'
}

case ${1:-all} in
up) up ;;
demo) demo ;;
ssh) vm ssh ;;
destroy) vm destroy -f ;;
all)
	up
	demo
	;;
*)
	echo "usage: $0 [up|demo|ssh|destroy|all]" >&2
	exit 2
	;;
esac
