#!/usr/bin/env bash
# Install the system programs Recording Cache runs (redis-server, nginx, npm) when
# they are absent; pass extra Debian packages as arguments (e.g. chromium).
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# npm installs the demo page's wavesurfer.js (npm ci); Debian's npm brings nodejs.
command -v npm >/dev/null 2>&1 || need+=(npm)
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "recording-cache: please install: ${need[*]} (apt-get install ${need[*]})" >&2
  exit 1
fi
echo "recording-cache: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# nginx-light carries secure_link; newer Debian releases fold it into nginx.
if ! $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]/nginx-light/nginx}" >/dev/null
fi
# Debian's packages start their own daemons on the standard ports; the project
# starts its own instances on its own ports, so stop those where we can.
for svc in nginx redis-server; do
  case " ${need[*]} " in *" $svc"*) $sudo service "$svc" stop >/dev/null 2>&1 || true ;; esac
done
