#!/usr/bin/env bash
# scripts/demo-verify.sh — the demo's deploy, submit and verify steps, against
# any Mesos + Marathon: the Vagrant cluster (scripts/vagrant-demo.sh runs it
# inside the VM), or the embedded Mesos with the Marathon stand-in on one
# machine (scripts/demo-local.sh starts those and runs it).
#
#   1. `tiltai deploy` puts the scheduler into Marathon and waits until it is
#      healthy (it fails on a failed or rolled-back deployment);
#   2. the scheduler's URL is read from the Marathon app's running task;
#   3. `tiltai links submit` sends the link spec and waits until it has
#      converged (every task running, every link table acknowledged);
#   4. `tiltai ps --json` must show the expected number of running tasks;
#   5. messages must flow: the sink service's received count must grow.
#
# Exits 0 when all of that holds, 1 with a message saying which step failed.
#
# Environment (defaults are the Vagrant VM's):
#   TILTAI           the tiltai binary to run here         (tiltai on PATH)
#   MARATHON_URL     Marathon's base URL                   (http://$IP:8080)
#   ZK_URL           the scheduler's --zk                  (zk://$IP:2181/tiltai)
#   MASTER           the scheduler's --master              (zk://$IP:2181/mesos)
#   BINARY_URL       where agents fetch tiltai from        (file:///tiltai/bin/tiltai)
#   APP_ID           the scheduler's Marathon app id       (/tiltai)
#   SCHEDULER_FLAGS  more `tiltai scheduler` flags, split on spaces  (none)
#   SPEC             the link spec to submit               (examples/pipeline.yaml)
#   TASKS            tasks the spec runs                   (5: feeder, 3 encryptors, printer)
#   SINK             the service whose received count must grow  (printer)
#   TIMEOUT          seconds to wait for each step         (300)
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
SINK=${SINK:-printer}
TIMEOUT=${TIMEOUT:-300}
read -ra scheduler_flags <<<"${SCHEDULER_FLAGS:-}"

log() { printf '\n==> %s\n' "$*"; }
die() {
	echo "demo-verify: FAILED: $*" >&2
	exit 1
}

for tool in "$TILTAI" curl jq; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install curl jq; build tiltai with go build ./cmd/tiltai)"
done
[[ -r $SPEC ]] || die "cannot read the link spec $SPEC"

log "1/5 deploying the scheduler to Marathon at $MARATHON_URL"
deploy_args=(--marathon "$MARATHON_URL" --app-id "$APP_ID" --zk "$ZK_URL" --master "$MASTER"
	--binary-url "$BINARY_URL" --timeout "${TIMEOUT}s")
if ((${#scheduler_flags[@]})); then
	deploy_args+=(-- "${scheduler_flags[@]}")
fi
"$TILTAI" deploy "${deploy_args[@]}" || die "step 1: tiltai deploy did not get the scheduler running and healthy (see above)"

log "2/5 finding the scheduler"
app=$(curl -fsS "$MARATHON_URL/v2/apps$APP_ID") || die "step 2: cannot read the app $APP_ID from Marathon"
SCHEDULER=$(jq -r '.app.tasks[] | select(.state == "TASK_RUNNING") | "http://\(.host):\(.ports[0])"' <<<"$app" | head -n1)
[[ -n $SCHEDULER ]] || die "step 2: the app $APP_ID has no running task"
echo "    scheduler API: $SCHEDULER"

log "3/5 submitting $SPEC and waiting until it has converged"
"$TILTAI" links submit --scheduler "$SCHEDULER" --timeout "${TIMEOUT}s" "$SPEC" ||
	die "step 3: the spec did not converge within ${TIMEOUT}s (see above; tiltai ps --scheduler $SCHEDULER)"

log "4/5 checking the tasks"
tasks=$("$TILTAI" ps --scheduler "$SCHEDULER" --json) || die "step 4: tiltai ps failed"
running=$(jq '[.[] | select(.phase == "running")] | length' <<<"$tasks")
((running == TASKS)) || die "step 4: $running tasks running, want $TASKS: $(jq -c '[.[] | {id, phase}]' <<<"$tasks")"
echo "    $running tasks running: $(jq -r '[.[].id] | join(", ")' <<<"$tasks")"

log "5/5 waiting for messages to reach $SINK (executors report every few seconds)"
received() {
	"$TILTAI" ps --scheduler "$SCHEDULER" --json --service "$SINK" |
		jq "[.[] | select(.phase == \"running\") | .gates // {} | .[] | .received] | add // 0"
}
# The first report with messages, then a later one with more: they flow.
start=$SECONDS
first=0
while :; do
	now=$(received) || die "step 5: tiltai ps failed"
	if ((first == 0)); then
		first=$now
	elif ((now > first)); then
		break
	fi
	((SECONDS - start <= TIMEOUT)) || die "step 5: $SINK received $now messages and no more within ${TIMEOUT}s: nothing flows"
	sleep 1
done
echo "    $SINK received $first, then $now messages"

"$TILTAI" ps --scheduler "$SCHEDULER"
cat <<EOF

The pipeline runs: feeder -> encryptor x3 -> printer, wired by the scheduler.
  tiltai ps --scheduler $SCHEDULER          tasks, their ports and message counts
  tiltai events --scheduler $SCHEDULER      what the scheduler does, as it happens
  tiltai links get --scheduler $SCHEDULER   the accepted spec
  Marathon: $MARATHON_URL
EOF
echo "demo-verify: OK"
