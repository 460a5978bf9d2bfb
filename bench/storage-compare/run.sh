#!/usr/bin/env bash
# Full comparison suite, engines interleaved (redb, fjall, redb, fjall) because the machine is
# shared and noisy. About 20-25 minutes on a 2-core VM. Output: RESULT/INFO lines on stdout.
#   CARGO_TARGET_DIR=/tmp/storage-compare-target cargo build --release
#   bash run.sh 2>&1 | tee /tmp/storage-compare.log
set -euo pipefail
B=${B:-/tmp/storage-compare-target/release/storage-compare}
DATA=${DATA:-/tmp/storage-compare-data}
both() { # run "$@" for redb, fjall, redb, fjall
  for run in 1 2; do for e in redb fjall; do
    echo "== run $run: $e $*"; "$B" "$@" --engine "$e" --dir "$DATA/$e"
  done; done
}
echo "== start $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in 1 2; do echo "== run $run: fsync"; "$B" fsync --secs 3 --dir "$DATA/fsync"; done
both put --clients 1 --secs 10
both put --clients 16 --secs 10
for run in 1 2; do echo "== run $run: redb quick-repair"; "$B" put --clients 16 --secs 10 --engine redb --quick-repair --dir "$DATA/redb"; done
both cycle --backlog 1000 --clients 16 --secs 20 --cycles 200000
both cycle --backlog 100000 --clients 16 --secs 20 --cycles 200000
both cycle --backlog 1000000 --clients 16 --secs 60 --cycles 200000
both recovery --count 1000000 --kill-after 3
for run in 1 2; do echo "== run $run: redb quick-repair"; "$B" recovery --count 1000000 --kill-after 3 --engine redb --quick-repair --dir "$DATA/redb"; done
both space --count 1000000 --idle 5
rm -rf "$DATA"
echo "== end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
