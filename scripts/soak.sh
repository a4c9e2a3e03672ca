#!/usr/bin/env bash
# scripts/soak.sh [switches] [seed]: the long soak (tests/soak/soak_test.cpp) in the
# release preset: random switches, link flaps, VF resets and surprise removals under
# numbered traffic both ways, the audit checked every round. Default 100,000 switches.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target soak_test
NPA_SOAK_SWITCHES=${1:-100000} NPA_SOAK_SEED=${2:-9} build/release/bin/soak_test
