#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (what CI runs).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check rnnlab tests benchmarks
ruff format --check rnnlab tests benchmarks
mypy rnnlab
python -m pytest "$@"
