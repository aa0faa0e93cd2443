#!/usr/bin/env bash
# scripts/demo-verify.sh — the demo's deploy, submit and verify steps, against
# any Mesos + Marathon: the Vagrant cluster (scripts/vagrant-demo.sh runs it
# inside the VM), or the embedded Mesos with the Marathon stand-in
# (deploy/marathontest/fakemarathon) on one machine.
#
#   1. `tiltai deploy` puts the scheduler into Marathon and waits until it is
#      healthy (it fails on a failed or rolled-back deployment);
#   2. the scheduler's URL is read from the Marathon app's task;
#   3. `tiltai links submit` sends the link spec (examples/pipeline.yaml);
#   4. `tiltai ps` is polled until every service's tasks run, and shown.
#
# Environment (defaults are the Vagrant VM's):
#   TILTAI        the tiltai binary to run here          (tiltai on PATH)
#   MARATHON_URL  Marathon's base URL                    (http://$IP:8080)
#   ZK_URL        the scheduler's --zk                   (zk://$IP:2181/tiltai)
#   MASTER        the scheduler's --master               (zk://$IP:2181/mesos)
#   BINARY_URL    where agents fetch tiltai from         (file:///tiltai/bin/tiltai)
#   APP_ID        the scheduler's Marathon app id        (/tiltai)
#   SPEC          the link spec to submit                (examples/pipeline.yaml)
#   TASKS         tasks the spec should run              (5: feeder, 3 encryptors, printer)
#   TIMEOUT       seconds to wait for each step          (300)
set -euo pipefail
cd "$(dirname "$0")/.."

IP=${TILTAI_VM_IP:-192.168.56.10}
TILTAI=${TILTAI:-tiltai}
MARATHON_URL=${MARATHON_URL:-http://$IP:8080}
ZK_URL=${ZK_URL:-zk://$IP:2181/tiltai}
MASTER=${MASTER:-zk://$IP:2181/mesos}
BINARY_URL=${BINARY_URL:-file:///tiltai/bin/tiltai}
APP_ID=${APP_ID:-/tiltai}
SPEC=${SPEC:-examples/pipeline.yaml}
TASKS=${TASKS:-5}
TIMEOUT=${TIMEOUT:-300}

log() { printf '\n==> %s\n' "$*"; }
die() {
	echo "demo-verify: $*" >&2
	exit 1
}

for tool in "$TILTAI" curl jq; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install curl jq; build tiltai with go build ./cmd/tiltai)"
done
[[ -r $SPEC ]] || die "cannot read the link spec $SPEC"

log "deploying the scheduler to Marathon at $MARATHON_URL"
"$TILTAI" deploy --marathon "$MARATHON_URL" --app-id "$APP_ID" \
	--zk "$ZK_URL" --master "$MASTER" --binary-url "$BINARY_URL" \
	--timeout "${TIMEOUT}s"

log "finding the scheduler"
app=$(curl -fsS "$MARATHON_URL/v2/apps$APP_ID") || die "cannot read the app $APP_ID from Marathon"
SCHEDULER=$(jq -r '.app.tasks[] | select(.state == "TASK_RUNNING") | "http://\(.host):\(.ports[0])"' <<<"$app" | head -n1)
[[ -n $SCHEDULER ]] || die "the app $APP_ID has no running task"
echo "    scheduler API: $SCHEDULER"

log "submitting $SPEC"
"$TILTAI" links submit --scheduler "$SCHEDULER" "$SPEC"

log "waiting for $TASKS running tasks"
start=$SECONDS
while :; do
	out=$("$TILTAI" ps --scheduler "$SCHEDULER" 2>&1) || true
	running=$(grep -c 'RUNNING' <<<"$out" || true)
	if ((running >= TASKS)); then
		break
	fi
	if ((SECONDS - start > TIMEOUT)); then
		printf '%s\n' "$out"
		die "only $running of $TASKS tasks running after ${TIMEOUT}s"
	fi
	sleep 2
done
printf '%s\n' "$out"

cat <<EOF

The pipeline runs: feeder -> encryptor x3 -> printer, wired by the scheduler.
  tiltai ps --scheduler $SCHEDULER          tasks, their ports and message counts
  tiltai links get --scheduler $SCHEDULER   the accepted spec
  Marathon UI: $MARATHON_URL
EOF
