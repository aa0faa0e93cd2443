#!/usr/bin/env bash
# scripts/vagrant-demo.sh — the Vagrant demo cluster, from the host.
#
#   scripts/vagrant-demo.sh [up|demo|ssh|destroy|all]    (default: all = up, then demo)
#
#   up       build tiltai for linux/amd64 into bin/ (static: it runs as the
#            executor inside the services' image) and the services' image
#            tiltai/pipeline:1 into bin/images (scripts/mkimage, no Docker
#            needed), start the VM and provision ZooKeeper, Mesos (master and
#            two agents running images: --image_providers=docker
#            --isolation=filesystem/linux,docker/runtime, their local
#            registry loaded from bin/images) and Marathon
#            (scripts/provision-cluster.sh)
#   demo     copy the current bin/tiltai and image into the VM, then run
#            scripts/demo-verify.sh there: deploy the scheduler through
#            Marathon, submit examples/pipeline-image.yaml (the encryptors
#            and the printer in the image), show the tasks
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
	echo "==> building the services' image tiltai/pipeline:1 into bin/images"
	go run ./scripts/mkimage -tiltai bin/tiltai -name tiltai/pipeline:1 -o bin/images -arch amd64
}

vm() { (cd vagrant && vagrant "$@"); }

up() {
	build
	vm up --provision
}

demo() {
	build
	vm rsync
	# The agents' local registry is /var/lib/tiltai/images, mounted into them.
	vm ssh -c 'sudo install -m 0755 /tiltai/bin/tiltai /usr/local/bin/tiltai &&
		sudo cp -a /tiltai/bin/images/. /var/lib/tiltai/images/ &&
		cd /tiltai && TILTAI=/usr/local/bin/tiltai SPEC=examples/pipeline-image.yaml scripts/demo-verify.sh'
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
