#!/usr/bin/env bash
# Make a Docker engine available for the docker tests, idempotently:
#   - install docker.io (engine + a docker CLI with BuildKit) and mmdebstrap (offline
#     Debian bases) when missing, zsh and fish (the `bg shell-init` tests need them) and
#     faketime (the clock knob of `bg audit --vary`);
#   - start dockerd in the background when no daemon answers, and wait for it (≤ 60 s);
#   - print `docker version`.
# Safe to run again: it changes nothing when everything is already there and running.
set -euo pipefail

log() { echo "ci-docker: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)  # `bg audit --vary` turns the clock with it
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not answer within 60 s; last lines of its log:"
    tail -n 20 /var/log/dockerd.log >&2 || true
    exit 1
  fi
fi

docker version
