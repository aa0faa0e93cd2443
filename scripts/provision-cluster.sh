#!/usr/bin/env bash
# scripts/provision-cluster.sh — brings up the demo cluster inside the Vagrant
# VM (run as root by `vagrant up` / `vagrant provision`): ZooKeeper from
# Debian's package, and from public container images a Mesos master, two Mesos
# agents and Marathon, all on the host network of the VM. Idempotent: running
# it again recreates the containers and waits until everything is ready.
#
# Images, pinned:
#   mesos/mesos-centos:1.11.x      Apache Mesos' own image (Mesos RPM on CentOS 7),
#                                  the 1.11 release branch: the Mesos version the
#                                  recordings in mesos-1.11/ were made with.
#   mesosphere/marathon:v1.11.24   the last Marathon release, for Mesos 1.11.
# ZooKeeper is Debian's zookeeperd (3.8), the same server the tests run.
#
# Environment: TILTAI_VM_IP (the VM's private address; default 192.168.56.10).
set -euo pipefail

IP=${TILTAI_VM_IP:-192.168.56.10}
MESOS_IMAGE=mesos/mesos-centos:1.11.x
MARATHON_IMAGE=mesosphere/marathon:v1.11.24
ZK=zk://$IP:2181

log() { printf '\n==> %s\n' "$*"; }

# wait_for DESCRIPTION SECONDS COMMAND...: run COMMAND every 2 s until it
# succeeds; fail with DESCRIPTION after SECONDS.
wait_for() {
	local what=$1 limit=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS - start > limit)); then
			echo "provision-cluster: $what did not happen within ${limit}s" >&2
			return 1
		fi
		sleep 2
	done
	echo "    $what ($((SECONDS - start))s)"
}

log "packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker.io zookeeperd jq curl ca-certificates >/dev/null

log "ZooKeeper on $IP:2181"
# The admin server would take port 8080, which is Marathon's.
cfg=/etc/zookeeper/conf/zoo.cfg
if ! grep -q '^admin.enableServer=false' "$cfg"; then
	echo 'admin.enableServer=false' >>"$cfg"
fi
systemctl enable --now zookeeper >/dev/null 2>&1 || true
systemctl restart zookeeper
zk_ok() { [[ $(exec 3<>"/dev/tcp/$IP/2181" && printf srvr >&3 && cat <&3) == *Mode:* ]]; }
wait_for "ZooKeeper serving" 120 zk_ok

log "pulling $MESOS_IMAGE and $MARATHON_IMAGE"
systemctl enable --now docker >/dev/null
docker pull -q "$MESOS_IMAGE"
docker pull -q "$MARATHON_IMAGE"
for c in mesos-master mesos-agent-1 mesos-agent-2 marathon; do
	docker rm -f "$c" >/dev/null 2>&1 || true
done

log "Mesos master on $IP:5050"
docker run -d --name mesos-master --net host --restart unless-stopped \
	--entrypoint mesos-master "$MESOS_IMAGE" \
	--ip="$IP" --hostname="$IP" --port=5050 \
	--zk="$ZK/mesos" --quorum=1 --registry=in_memory \
	--work_dir=/var/lib/mesos/master >/dev/null

# The agents' local image registry: `docker save` tarballs named
# <name>.tar (Mesos' local puller). scripts/vagrant-demo.sh builds the
# services' image on the host into bin/images, which rsync brings to
# /tiltai/bin/images.
REGISTRY=/var/lib/tiltai/images
log "image registry $REGISTRY"
mkdir -p "$REGISTRY"
if [[ -d /tiltai/bin/images ]]; then
	cp -a /tiltai/bin/images/. "$REGISTRY/"
fi

# Two agents on the VM, each with its own port, work dir and port range.
# /tiltai (the repository, with bin/tiltai) is mounted so the Mesos fetcher
# can take the binary from file:///tiltai/bin/tiltai. Services with an
# image run on the Mesos containerizer with the linux launcher and the
# filesystem/linux and docker/runtime isolators, which make mount and pid
# namespaces: the agents' containers are privileged, and their work dirs
# are the VM's, not the container's overlay.
for n in 1 2; do
	log "Mesos agent $n on $IP:$((5050 + n))"
	first=$((31000 + (n - 1) * 500))
	mkdir -p "/var/lib/mesos/agent-$n"
	docker run -d --name "mesos-agent-$n" --net host --privileged --restart unless-stopped \
		-v /tiltai:/tiltai:ro -v "$REGISTRY:$REGISTRY:ro" \
		-v "/var/lib/mesos/agent-$n:/var/lib/mesos/agent-$n" -v /sys/fs/cgroup:/sys/fs/cgroup \
		--entrypoint mesos-agent "$MESOS_IMAGE" \
		--master="$ZK/mesos" --ip="$IP" --hostname="$IP" --port=$((5050 + n)) \
		--work_dir="/var/lib/mesos/agent-$n" --runtime_dir="/var/run/mesos/agent-$n" \
		--containerizers=mesos --launcher=linux \
		--isolation=filesystem/linux,docker/runtime,posix/cpu,posix/mem \
		--image_providers=docker --docker_registry="$REGISTRY" \
		--docker_store_dir="/var/lib/mesos/agent-$n/store/docker" \
		--no-systemd_enable_support --switch_user=false \
		--attributes="agent:$n" \
		--resources="cpus:2;mem:2048;disk:10000;ports:[$first-$((first + 499))]" >/dev/null
done

log "Marathon on $IP:8080"
docker run -d --name marathon --net host --restart unless-stopped \
	"$MARATHON_IMAGE" \
	--master "$ZK/mesos" --zk "$ZK/marathon" \
	--hostname "$IP" --http_port 8080 >/dev/null

log "waiting for the cluster"
master_ok() { curl -fsS "http://$IP:5050/state" | jq -e '.activated_slaves >= 2'; }
marathon_ok() { curl -fsS "http://$IP:8080/v2/info" | jq -e '.elected == true'; }
wait_for "Mesos master elected with 2 agents" 300 master_ok
wait_for "Marathon elected and registered" 300 marathon_ok

cat <<EOF

The cluster is up:
  Mesos     http://$IP:5050      (also http://localhost:5050 on the host)
  Marathon  http://$IP:8080      (also http://localhost:8080 on the host)
  ZooKeeper $IP:2181 (masters under /mesos, Marathon under /marathon)
Next: scripts/vagrant-demo.sh demo   (deploys the scheduler and the pipeline)
EOF
