#!/usr/bin/env bash
# scripts/soak.sh [switches] [seed]: the long soaks in the release preset, random switches,
# link flaps, VF resets and surprise removals under numbered traffic both ways, the audit
# and the ordering checked every round, the loss exactly every few hundred rounds:
#   soak_test        the shell over two simnic paths (tests/soak/soak_test.cpp)
#   soak_paths_test  the shell over the vmxnet3 and 82576 VF plugins (soak_paths_test.cpp)
# Default 100,000 switches each.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target soak_test soak_paths_test
n=${1:-100000}
seed=${2:-9}
NPA_SOAK_SWITCHES=$n NPA_SOAK_SEED=$seed build/release/bin/soak_test
NPA_SOAK_PATH_SWITCHES=$n NPA_SOAK_SEED=$seed build/release/bin/soak_paths_test
