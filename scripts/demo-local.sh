#!/usr/bin/env bash
# scripts/demo-local.sh — the demo cluster's deploy-submit-verify run on one
# machine, with nothing but this repository, Go, and Debian's zookeeper, curl
# and jq. CI runs it; so can you.
#
# It builds tiltai and the Marathon stand-in, then starts on loopback:
#   - ZooKeeper (Debian's package; standalone, admin server off, a free port),
#   - `tiltai localmesos` (a master and two agents) with Mesos' framework
#     authentication (--authenticate_frameworks --credentials) and executor
#     authentication (--authenticate_http_executors --executor_secret_key),
#   - fakemarathon (deploy/marathontest: Marathon's REST API, apps run as
#     local processes),
# and runs scripts/demo-verify.sh against them: `tiltai deploy` puts the
# scheduler into "Marathon" (state and leader election in ZooKeeper, the
# principal and secret file for Mesos), the pipeline is submitted, its five
# tasks must run and messages must flow. Whatever happens, everything it
# started is stopped and its files removed on exit (KEEP=1 keeps them). It
# exits non-zero, saying what failed, on any failure.
#
#   scripts/demo-local.sh          (about a minute once Go's build cache is warm)
#
# Environment: TIMEOUT (seconds per step, default 120), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

TIMEOUT=${TIMEOUT:-120}
ZOOKEEPER_JAR=/usr/share/java/zookeeper.jar
SLF4J_SIMPLE=/usr/share/java/slf4j-simple.jar

log() { printf '\n==> %s\n' "$*"; }
fail() {
	echo "demo-local: FAILED: $*" >&2
	exit 1
}

for tool in go java curl jq; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install golang zookeeper curl jq)"
done
[[ -r $ZOOKEEPER_JAR ]] || fail "ZooKeeper is not installed ($ZOOKEEPER_JAR is missing): apt-get install zookeeper"

work=$(mktemp -d "${TMPDIR:-/tmp}/tiltai-demo.XXXXXX")
pids=()  # what we started, in order; stopped in reverse
names=() # and what each is, for the messages

cleanup() {
	local rc=$? i pid
	trap - EXIT INT TERM
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		# Each stops its own children (fakemarathon its tasks, localmesos
		# its executors) on SIGTERM; give it 20 s, then kill it.
		for _ in $(seq 200); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo-local: ${names[i]} (pid $pid) did not stop on SIGTERM; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	if ((rc != 0)); then
		for f in "$work"/*.log; do
			[[ -s $f ]] || continue
			echo "--- last lines of $f" >&2
			tail -n 25 "$f" >&2
		done
	fi
	if [[ ${KEEP:-} == 1 ]]; then
		echo "demo-local: kept $work" >&2
	else
		rm -rf "$work"
	fi
	if ((rc == 0)); then
		echo "demo-local: OK"
	else
		echo "demo-local: FAILED (exit $rc)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# started NAME PID: remember a process to stop on exit.
started() {
	names+=("$1")
	pids+=("$2")
}

# wait_until SECONDS WHAT COMMAND...: poll COMMAND until it succeeds.
wait_until() {
	local limit=$1 what=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS - start <= limit)) || fail "$what did not happen within ${limit}s"
		sleep 0.2
	done
}

# alive NAME PID: fail if a process we started has exited.
alive() { kill -0 "$2" 2>/dev/null || fail "$1 exited; see $work/$1.log"; }

# free_port: a loopback port nothing listens on right now.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	fail "no free loopback port found"
}

log "building tiltai and fakemarathon"
mkdir -p "$work/bin"
CGO_ENABLED=0 go build -o "$work/bin/tiltai" ./cmd/tiltai || fail "go build ./cmd/tiltai"
go build -o "$work/bin/fakemarathon" ./deploy/marathontest/fakemarathon || fail "go build fakemarathon"
TILTAI=$work/bin/tiltai

log "ZooKeeper"
zk_port=$(free_port)
mkdir -p "$work/zk/data"
cat >"$work/zk/zoo.cfg" <<EOF
tickTime=500
dataDir=$work/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
maxClientCnxns=0
EOF
cp=$ZOOKEEPER_JAR
[[ -r $SLF4J_SIMPLE ]] && cp+=:$SLF4J_SIMPLE
java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
	-Dzookeeper.admin.enableServer=false -Dzookeeper.jmx.log4j.disable=true \
	-cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$work/zk/zoo.cfg" >"$work/zookeeper.log" 2>&1 &
started zookeeper $!
zk_serving() { [[ $(exec 3<>"/dev/tcp/127.0.0.1/$zk_port" && printf srvr >&3 && cat <&3) == *"Mode: standalone"* ]]; }
wait_until 60 "ZooKeeper serving on 127.0.0.1:$zk_port" zk_serving
alive zookeeper "${pids[-1]}"
echo "    zk://127.0.0.1:$zk_port"

log "localmesos (a master, two agents; frameworks and executors must authenticate)"
secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$secret" >"$work/secret"
printf '{"credentials": [{"principal": "tiltai", "secret": "%s"}]}\n' "$secret" >"$work/credentials"
head -c 32 /dev/urandom >"$work/executor.key"
chmod 600 "$work/secret" "$work/credentials" "$work/executor.key"
"$TILTAI" localmesos --listen 127.0.0.1:0 --agents 2 --work_dir "$work/mesos" \
	--authenticate_frameworks --credentials "$work/credentials" \
	--authenticate_http_executors --executor_secret_key "$work/executor.key" \
	>"$work/localmesos.out" 2>"$work/localmesos.log" &
started localmesos $!
master_up() { grep -q 'master listening on' "$work/localmesos.out"; }
wait_until 60 "localmesos starting" master_up
master=$(sed -n 's/^localmesos: master listening on \(http:[^ ]*\) .*/\1/p' "$work/localmesos.out")
[[ -n $master ]] || fail "cannot read the master's URL from $work/localmesos.out"
curl -fsS "$master/health" >/dev/null || fail "localmesos at $master does not answer"
echo "    $master"

log "fakemarathon"
"$work/bin/fakemarathon" --listen 127.0.0.1:0 --dir "$work/marathon" >"$work/fakemarathon.out" 2>"$work/fakemarathon.log" &
started fakemarathon $!
marathon_up() { grep -q '^http' "$work/fakemarathon.out"; }
wait_until 30 "fakemarathon starting" marathon_up
marathon=$(head -n1 "$work/fakemarathon.out")
curl -fsS "$marathon/v2/info" >/dev/null || fail "fakemarathon at $marathon does not answer"
echo "    $marathon"

log "demo-verify"
# In the background, so that a signal to this script is handled at once
# (bash runs traps only between foreground commands).
TILTAI=$TILTAI MARATHON_URL=$marathon ZK_URL=zk://127.0.0.1:$zk_port/tiltai MASTER=$master \
	BINARY_URL=file://$work/bin/tiltai TIMEOUT=$TIMEOUT \
	SCHEDULER_FLAGS="--framework_name tiltai-demo --mesos_authentication_principal tiltai --mesos_authentication_secret_file $work/secret" \
	scripts/demo-verify.sh &
started demo-verify $!
wait "${pids[-1]}" || fail "scripts/demo-verify.sh failed (its message is above)"

# The scheduler's logs must not show the Mesos secret.
if grep -rqF -- "$secret" "$work/marathon" "$work"/*.log; then
	fail "the Mesos secret appears in a log: $(grep -rlF -- "$secret" "$work/marathon" "$work"/*.log | tr '\n' ' ')"
fi
