#!/usr/bin/env bash
# The main job: a short demo on synthetic data (a few minutes at most on 2 CPU cores).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m rnnlab demo "$@"
