#!/usr/bin/env bash
# Install FFmpeg's libraries (Debian's ffmpeg) for video decoding: without them every lerobot-train
# start logs ~100 lines of torchcodec traceback, twice, before falling back to pyav. Idempotent:
# does nothing when libavcodec is present. Not root or no apt-get: says why and exits 0 (training
# still works through pyav, only noisier and slower to start).
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"
if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so\.' && command -v ffmpeg >/dev/null 2>&1; then
    echo "install_ffmpeg: FFmpeg already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_ffmpeg: not root; cannot install ffmpeg (video decoding falls back to pyav)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_ffmpeg: no apt-get; install FFmpeg 5-7 by hand (video decoding falls back to pyav)"
    exit 0
fi
echo "install_ffmpeg: installing ffmpeg"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
echo "install_ffmpeg: installed ffmpeg $(dpkg-query -W -f='${Version}' ffmpeg 2>/dev/null || echo '?')"
