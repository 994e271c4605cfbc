#!/usr/bin/env bash
# Zenith's benchmark suite: generates the datasets it needs, then runs the loader comparison
# (bench/suite.py) and the whole-table load benchmark (bench/load_benchmark.py). `--help` lists
# the workloads and systems. Results: bench/results/suite-<scale>.{md,json,png}, load-<scale>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi

scale=medium
tar_scale=tiny
runs=3
systems=""
workloads=""
batch_sizes=256,64

usage() {
  cat <<EOT
Usage: ./bench/run_benchmarks.sh --all | --workloads LIST [options]

  --all               run every workload: parquet, parquet-plain, tar and load
  --workloads LIST    comma-separated subset of parquet,parquet-plain,tar,load
  --systems LIST      comma-separated systems for parquet/parquet-plain/tar (default: all)
  --scale S           dataset for the parquet workloads and load: tiny|small|medium (default $scale)
  --tar-scale S       dataset for tar (default $tar_scale: the webdataset library decodes each
                      sample in Python, an epoch of 4M samples would take minutes per run)
  --runs N            runs per configuration, the median is reported (default $runs)
  --batch-sizes LIST  batch sizes for parquet/parquet-plain/tar (default $batch_sizes)
  -h, --help          this help

Workload "parquet" reads pyarrow's default layout (dictionary-encoded, row groups of 65,536),
"parquet-plain" the same rows with PLAIN floats (row groups of 16,384).
Workload "load": zenith.load against polars and pyarrow reading the whole Parquet directory, the CSV
file and a ~1 GB Arrow IPC file (bench/load_benchmark.py).
EOT
  "$PY" bench/suite.py --list
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --all) workloads=parquet,parquet-plain,tar,load ;;
    --workloads) workloads=$2; shift ;;
    --systems) systems=$2; shift ;;
    --scale) scale=$2; shift ;;
    --tar-scale) tar_scale=$2; shift ;;
    --runs) runs=$2; shift ;;
    --batch-sizes) batch_sizes=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$workloads" ]]; then usage >&2; exit 2; fi

has() { [[ ",$workloads," == *",$1,"* ]]; }

if ! "$PY" -c "import zenith; zenith.DataLoader" 2>/dev/null; then
  echo "warning: zenith is not built into $PY (run 'make build'); its rows will show ERROR" >&2
fi

# Formats per scale: the loader comparison reads Parquet (and tar), the load benchmark CSV too.
declare -A formats=()
if has parquet; then formats[$scale]+=parquet,; fi
if has parquet-plain; then formats[$scale]+=parquet-plain,; fi
if has load; then formats[$scale]+=parquet,parquet-plain,csv,; fi
if has tar; then formats[$tar_scale]+=wds,; fi
for s in "${!formats[@]}"; do
  "$PY" bench/generate_datasets.py --scale "$s" --formats "${formats[$s]%,}"
done

suite_workloads=$(tr ',' '\n' <<<"$workloads" | grep -E '^(parquet|parquet-plain|tar)$' | paste -sd, || true)
if [[ -n "$suite_workloads" ]]; then
  "$PY" bench/suite.py --scale "$scale" --tar-scale "$tar_scale" --runs "$runs" \
    --workloads "$suite_workloads" --batch-sizes "$batch_sizes" ${systems:+--systems "$systems"}
fi
if has load; then
  "$PY" bench/load_benchmark.py --scale "$scale" --runs "$runs"
fi
