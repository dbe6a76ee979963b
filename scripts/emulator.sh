#!/usr/bin/env bash
# Start or stop the local AWS emulator (moto_server) on 127.0.0.1.
#   emulator.sh up     start it unless one answers already; wait until it answers
#   emulator.sh down   stop the one we started, by its PID
#   emulator.sh status exit 0 when an emulator this folder started is running
#   emulator.sh url    print the endpoint URL
# EMULATOR_PORT (default 5055) and EMULATOR_DIR (default .emulator) set where.
# If AWS_ENDPOINT_URL already points at an emulator that answers (LocalStack,
# or moto started elsewhere), "up" uses it and "down" leaves it alone.
set -euo pipefail
port=${EMULATOR_PORT:-5055}
dir=${EMULATOR_DIR:-.emulator}
url=${AWS_ENDPOINT_URL:-http://127.0.0.1:$port}
pidfile=$dir/moto.pid

answers() { curl -fsS -o /dev/null --max-time 2 "$1/moto-api/" 2>/dev/null || curl -sS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

case ${1:-} in
up)
	if [ -n "${AWS_ENDPOINT_URL:-}" ] && answers "$AWS_ENDPOINT_URL"; then
		echo "emulator: using $AWS_ENDPOINT_URL"
		exit 0
	fi
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		echo "emulator: already running (pid $(cat "$pidfile")) at http://127.0.0.1:$port"
		exit 0
	fi
	if answers "http://127.0.0.1:$port"; then
		echo "emulator: something else already answers on 127.0.0.1:$port; set EMULATOR_PORT, or AWS_ENDPOINT_URL to use it" >&2
		exit 1
	fi
	if ! command -v moto_server >/dev/null 2>&1; then
		echo "emulator: moto_server not found (pip install 'moto[server]'), or set AWS_ENDPOINT_URL to a running emulator" >&2
		exit 1
	fi
	mkdir -p "$dir"
	# State kept beside the emulator (the demo's tables) belongs to the
	# emulator's previous life: its checkpoints name sequence numbers the new
	# emulator has never issued.
	rm -rf "$dir/state"
	moto_server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 100); do
		if answers "http://127.0.0.1:$port"; then
			echo "emulator: moto_server up (pid $(cat "$pidfile")) at http://127.0.0.1:$port"
			exit 0
		fi
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "emulator: moto_server exited; see $dir/moto.log" >&2
			cat "$dir/moto.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "emulator: moto_server did not answer in 20s; see $dir/moto.log" >&2
	exit 1
	;;
down)
	if [ -f "$pidfile" ]; then
		pid=$(cat "$pidfile")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
			echo "emulator: stopped pid $pid"
		fi
		rm -f "$pidfile"
	fi
	;;
url)
	echo "$url"
	;;
status)
	# Exit 0 when an emulator this folder started is running.
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
	;;
*)
	echo "usage: $0 up|down|status|url" >&2
	exit 2
	;;
esac
