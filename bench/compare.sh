#!/usr/bin/env bash
# Side-by-side benchmark: mqgate vs mosquitto vs rumqttd on this machine, same run,
# same load generator (`mqgate bench`). Prints every RESULT line and a table of ratios
# to mosquitto. Needs: mosquitto (Debian package), optionally rumqttd
# (`cargo install rumqttd`; skipped when absent).
#
#   bench/compare.sh            # 10 s per scenario
#   SECONDS_PER=5 bench/compare.sh
#   LAT_ROUNDS=9 bench/compare.sh   # latency rounds per broker (default 5; median shown)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 || true

cargo build --release --locked -q
bin=target/release/mqgate

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

declare -A port pid
# mosquitto 2.0 with its queue/inflight limits raised (its defaults silently drop QoS 1
# under load) and persistence off.
port[mosquitto]=$(free_port)
cat > "$work/mosquitto.conf" <<CONF
listener ${port[mosquitto]} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
max_connections -1
CONF
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 & pid[mosquitto]=$!

# mqgate with persistence off (like mosquitto above).
port[mqgate]=$(free_port)
cat > "$work/mqgate.toml" <<CONF
[persistence]
enabled = false
[broker]
max_connections = 100000
CONF
RUST_LOG=warn $bin run --config "$work/mqgate.toml" --listen 127.0.0.1:${port[mqgate]} & pid[mqgate]=$!

# mqgate with its default durability (ack after the group-committed fsync).
port[mqgate-durable]=$(free_port)
RUST_LOG=warn $bin run --listen 127.0.0.1:${port[mqgate-durable]} --data-dir "$work/durable" & pid[mqgate-durable]=$!

brokers=(mqgate mosquitto)
if command -v rumqttd >/dev/null; then
  port[rumqttd]=$(free_port)
  cat > "$work/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:${port[rumqttd]}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true
CONF
  rumqttd -c "$work/rumqttd.toml" -q >/dev/null 2>&1 & pid[rumqttd]=$!
  brokers+=(rumqttd)
fi
for b in "${brokers[@]}" mqgate-durable; do wait_port "${port[$b]}"; done

results="$work/results.txt"
bench() {
  local b=$1; shift
  $bin bench --addr 127.0.0.1:${port[$b]} --broker-pid ${pid[$b]} --seconds "$secs" --label "$b" "$@" | tee -a "$results" \
    || echo "bench: $b $* failed" >&2
}

# Memory first, on fresh processes, before the load scenarios grow their heaps.
for b in "${brokers[@]}"; do
  bench "$b" connections --count "${CONNECTIONS:-10000}"
done
for b in "${brokers[@]}"; do
  bench "$b" fan-in --qos 0
  bench "$b" fan-in --qos 1
  bench "$b" fan-out --subscribers 50
  bench "$b" connect-rate
done
# Latency at a low rate is dominated by thread wake-ups on a shared, noisy machine: it
# runs in LAT_ROUNDS rounds that alternate the brokers, and the table shows the median.
for _ in $(seq "${LAT_ROUNDS:-5}"); do
  for b in "${brokers[@]}"; do
    bench "$b" latency --rate 1000
  done
done
# Default durability with a persistent subscriber: every QoS 1 message is written and
# fsynced (group commit) before the publisher's PUBACK.
bench mqgate-durable fan-in --qos 1 --persistent-subscriber

python3 - "$results" <<'PY'
import re, sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    m = re.match(r'RESULT broker=(\S+) scenario="([^"]*)" value=(\S+) unit=(\S+)', line)
    if not m: continue
    b, s, v, u = m.groups()
    s = re.sub(r' received=\S+', '', s)
    rows.setdefault((s, u), {}).setdefault(b, []).append(float(v))
for vals in rows.values():
    for b, vs in vals.items():
        vs.sort()
        vals[b] = vs[len(vs) // 2] if len(vs) % 2 else (vs[len(vs) // 2 - 1] + vs[len(vs) // 2]) / 2
brokers = ["mqgate", "mosquitto", "rumqttd", "mqgate-durable"]
print("\n| scenario | unit | " + " | ".join(brokers) + " | mqgate / mosquitto |")
print("|---|---|" + "---|" * (len(brokers) + 1))
for (s, u), vals in rows.items():
    cells = [f"{vals[b]:.0f}" if b in vals else "" for b in brokers]
    ratio = f"{vals['mqgate'] / vals['mosquitto']:.2f}x" if vals.get('mosquitto') and 'mqgate' in vals else ""
    print(f"| {s} | {u} | " + " | ".join(cells) + f" | {ratio} |")
PY
