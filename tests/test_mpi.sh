#!/usr/bin/env bash
# saliency audit and saliency explain under mpirun (docs/scaling.md): every audit and an explanation
# with 2 and 3 ranks (oversubscribed on two cores) against one process, byte for byte (the JSON's
# "ranks" aside, which must say 2 and 3); batches split unevenly (5 samples in batches of 2: ranks
# get 2+1 and 1+1+1 batches); a skip only one rank meets; a rank that fails alone (a tiny memory
# budget on it, given through mpirun's per-rank arguments) before and inside the collective part:
# exit 1 on every rank, one message naming the rank, no output file, no hang.
set -u
. "$(dirname "$0")/lib.sh"

# OpenMPI as root, more ranks than cores, in a container; one thread per rank
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
# shared memory only, and no probing for network transports: MPI_Init in 0.6 s instead of 0.9
export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
export OMP_NUM_THREADS=1
command -v mpirun > /dev/null || { bad "mpirun is missing (scripts/deps.sh installs openmpi-bin)"; finish test_mpi; exit 1; }
# Under the sanitizers (make SAN=1 test) the ranks run without LeakSanitizer: OpenMPI leaves
# allocations of its plugins at exit, which LSan reports from modules already unloaded, so no
# suppression can name them. ASan and UBSan stay on; tests/test_shard.c checks the library's
# sharding for leaks, in one process.
mpienv() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@"; }
mpi() { local n=$1; shift; mpienv timeout 120 mpirun --quiet --oversubscribe -np "$n" "$@"; }

"$PY" - "$tmp" <<'PYEOF' && ok || bad "make inputs"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.random((64, 1, 12, 12), dtype=np.float32)
y = (x[:, 0, :6].mean(axis=(1, 2)) * 40).astype(np.int64) % 4
np.save(d + '/tx.npy', x); np.save(d + '/ty.npy', y)
np.save(d + '/x.npy', x[:5])
xn = x[:5].copy(); xn[4, 0, 3, 3] = np.nan; np.save(d + '/xnan.npy', xn)   # in the last batch: rank 1 or 2
m = np.zeros((5, 12, 12), np.int64); lab = np.zeros((5, 4), np.float32)
for i in range(5):
    for k in rng.choice(4, 2, replace=False):
        r, c = rng.integers(0, 8, 2); m[i, r:r + 4, c:c + 4] = k + 1; lab[i, k] = 1
np.save(d + '/masks.npy', m); np.save(d + '/labels.npy', lab)
PYEOF
"$bin" train --arch cnn --data "$tmp/tx.npy:$tmp/ty.npy" --epochs 1 --seed 1 --out "$tmp/m.onnx" > /dev/null 2>&1 \
    && ok || bad "train"

bin=$(realpath "$bin")
cd "$tmp" || exit 1
M="--method gradient --method smoothgrad --param samples=3 --method lrp_epsilon --batch 2 --quiet --figure-sample 3"
audit() { # tag all|some launcher... (the tag names the files; "some": three audits and explain)
    local t=$1 all=$2; shift 2
    "$@" "$bin" audit invariance m.onnx --input x.npy --shift -1 $M --json $t-inv.json --csv $t-inv.csv --figure $t-inv.png &&
    { [ $all = some ] || "$@" "$bin" audit randomization m.onnx --input x.npy $M --json $t-rnd.json --figure $t-rnd.png --plot $t-rndp.png; } &&
    { [ $all = some ] || "$@" "$bin" audit class-sensitivity m.onnx --input x.npy $M --json $t-cls.json --figure $t-cls.png; } &&
    "$@" "$bin" audit pointing m.onnx --input x.npy --masks masks.npy --labels labels.npy $M --json $t-pt.json --figure $t-pt.png &&
    "$@" "$bin" audit faithfulness m.onnx --input x.npy --steps 4 $M --json $t-fa.json --csv $t-fa.csv --plot $t-fap.png &&
    "$@" "$bin" explain m.onnx --input x.npy --method smoothgrad --param samples=3 --batch 2 --out $t-ex.npy --json $t-ex.json
}
# the same files, to the byte; the JSON's "ranks" says how many shared the work
same() { # tag ranks files
    local f g n=0
    for f in one-*; do
        g=$1-${f#one-}
        [ -e "$g" ] || continue
        if [[ $f == *.json ]]; then
            grep -q "^  \"ranks\": $2,\$" "$g" || { bad "$g: no \"ranks\": $2"; continue; }
            cmp -s <(grep -v '^  "ranks"' "$f") <(grep -v '^  "ranks"' "$g") || { bad "$g differs from one process"; continue; }
        else
            cmp -s "$f" "$g" || { bad "$g differs from one process"; continue; }
        fi
        n=$((n + 1))
    done
    [ "$n" -eq "$3" ] && ok || bad "$1: $n files compared, not $3"
}
audit one all && ok || bad "one process"
grep -q '^  "ranks": 1,$' one-inv.json && ok || bad "one process: no \"ranks\": 1"
audit two all mpi 2 && ok || bad "mpirun -np 2"
same two 2 15
audit three some mpi 3 && ok || bad "mpirun -np 3"
same three 3 10

# explain under a launcher shares batches of 16 whatever the rank count: -np 1 and -np 3 agree
X="explain m.onnx --input x.npy --method smoothgrad --param samples=3"
mpi 1 "$bin" $X --out d1.npy && mpi 3 "$bin" $X --out d3.npy && cmp -s d1.npy d3.npy && ok || bad "explain, default batch"

# a skip only the rank holding sample 4 meets becomes every rank's, as one process reports it
"$bin" audit class-sensitivity m.onnx --input xnan.npy --method gradient --batch 2 --json nan.json > /dev/null 2> nan1.txt
[ $? -eq 1 ] && ok || bad "NaN sample, one process: exit 1"
mpi 3 "$bin" audit class-sensitivity m.onnx --input xnan.npy --method gradient --batch 2 --json nan.json > /dev/null 2> nan3.txt
[ $? -eq 1 ] && ok || bad "NaN sample, 3 ranks: exit 1"
grep -q "non-finite" nan1.txt && cmp -s nan1.txt nan3.txt && ok || { bad "NaN sample: messages differ"; cat nan1.txt nan3.txt; }
[ ! -e nan.json ] && ok || bad "NaN sample: a JSON was written"

# usage errors: one message, not one per rank
mpi 2 "$bin" audit invariance m.onnx --input x.npy --bogus > /dev/null 2> use.txt
[ $? -eq 1 ] && [ "$(grep -c . use.txt)" -eq 1 ] && grep -q "unknown option --bogus" use.txt && ok ||
    { bad "usage error under mpirun"; cat use.txt; }

# rank 2 alone fails: its budget cannot hold the model (before the first exchange) or an
# integrated-gradients pass (inside the audit); every rank stops, rank 0 names rank 2
A="audit class-sensitivity m.onnx --input x.npy --method gradient --method integrated_gradients --batch 2 --json f.json"
for mem in 1K 1.6M; do
    mpienv timeout 120 mpirun --quiet --oversubscribe -np 2 "$bin" $A : -np 1 "$bin" --max-memory $mem $A > /dev/null 2> fail.txt
    rc=$?
    [ $rc -eq 1 ] && ok || bad "rank 2 failing ($mem): exit $rc (want 1; 124: a hang)"
    [ "$(grep -c . fail.txt)" -eq 1 ] && grep -q "rank 2 of 3: .*memory budget" fail.txt && ok ||
        { bad "rank 2 failing ($mem): message"; cat fail.txt; }
    [ ! -e f.json ] && ok || bad "rank 2 failing ($mem): f.json written"
done
finish test_mpi
