#!/usr/bin/env bash
# Runs every mqgate test. On a fresh Debian/Ubuntu machine it first installs what the
# tests talk to: mosquitto (the cloud broker in bridge tests), mosquitto_pub/_sub,
# openssl, OpenSSH and RabbitMQ (a two-node cluster as the bridge's upstream, started on
# loopback by tests/support/rabbitmq-cluster.sh). Crates come through cargo.
set -euo pipefail
cd "$(dirname "$0")"

packages=(mosquitto mosquitto-clients openssl openssh-client openssh-server rabbitmq-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test.sh: installing ${missing[*]}"
  $sudo apt-get update -qq
  # policy-rc.d keeps the packages from starting their own mosquitto/sshd services
  # (a system mosquitto on 1883 would collide with `mqgate run`).
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ -z "$made_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

cargo test --workspace --locked "$@"
