#!/usr/bin/env bash
# Installs what the build needs beyond the .NET SDK: on hosts whose libstdc++ predates GCC 13 (Debian 12),
# g++ compiles the one-symbol shim that lets TorchSharp load (build/GenRecal.Native.targets); and the DejaVu
# font, which the demo's plots need for their text (best effort: plots are drawn without text otherwise).
set -euo pipefail
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null) || echo "genrecal: could not install fonts-dejavu-core; plots will have no text" >&2
fi
# No pipe into a reader that stops early: under pipefail, 'ldconfig -p | awk "...; exit"' fails with SIGPIPE (141)
# whenever awk exits before ldconfig has written everything, so the list is read whole first.
libs=$(ldconfig -p 2>/dev/null || true)
stdcxx=$(awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}' <<<"$libs")
if [ -n "$stdcxx" ] && grep -q GLIBCXX_3.4.32 "$stdcxx"; then exit 0; fi
if command -v g++ >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "genrecal: installing g++ (needed once to build TorchSharp's libstdc++ shim)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
else
  echo "genrecal: this host's libstdc++ lacks GLIBCXX_3.4.32 and g++ is missing; install g++ (e.g. 'sudo apt-get install g++') and retry" >&2
  exit 1
fi
