#!/usr/bin/env bash
# Run a test command once under each of two CPU kernel sets of torch, and fail if either fails.
#
#   tests/tools/under_kernel_sets.sh PYTHON COMMAND...
#
# torch picks its vectorised CPU kernels (AVX-512, AVX2, or the plain "default" build) from
# the CPU, and ATEN_CPU_CAPABILITY overrides the choice. The kernels round, and at the edge
# of the range even overflow, differently; a reduction in another order changes a chaotic
# training run. So every test runs under the machine's own kernel set (or the one the caller
# set in ATEN_CPU_CAPABILITY) and under ATEN_CPU_CAPABILITY=default: what passes only on
# the instruction set of the machine that stored the outputs fails here, not for a reader.
set -uo pipefail
python=$1
shift
capability() { "$python" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())'; }

first=$(capability)
sets=("${ATEN_CPU_CAPABILITY:-}")
if [ "$(ATEN_CPU_CAPABILITY=default capability)" != "$first" ]; then
    sets+=(default)
else
    echo "under_kernel_sets: this CPU's kernel set is already $first; running once" >&2
fi
status=0
for set in "${sets[@]}"; do
    if [ -n "$set" ]; then export ATEN_CPU_CAPABILITY=$set; else unset ATEN_CPU_CAPABILITY; fi
    echo "== CPU kernel set $(capability) (ATEN_CPU_CAPABILITY=${set:-unset}), $(nproc) cores: $*"
    "$@" || status=1
done
exit $status
