#!/usr/bin/env bash
# GPU checks for bg, by hand on a machine with an NVIDIA GPU and torch (bash bench/gpu/run.sh from the repo root): the example trains on CUDA through
# bg's local executor with gpus = "all", twice (byte-identical model), and the GPU pool serialises stages.
set -u
R=$PWD; export PYTHONPATH=$R PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, rich; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
W=/tmp/gpuex; rm -rf $W; mkdir -p $W; cp -r Buildfile.toml stages $W/
sed -i 's/^gpus = 0.*/gpus = "all"/' $W/Buildfile.toml; grep -n '^gpus' $W/Buildfile.toml
cd $W
time python3 -m buildgraph run plot --executor local --param device=cuda -j 4 2>&1 | grep -v "img/s" | tail -22
python3 -c "import json; print('ENV', json.load(open('loss.json'))['environment'])"
sha256sum model.pt metrics.json figure.png | tee /tmp/a.sum
python3 -m buildgraph run plot --executor local --param device=cuda --force train 2>&1 | tail -4
sha256sum model.pt metrics.json figure.png | diff - /tmp/a.sum && echo "CUDA RERUN BYTE-IDENTICAL"
python3 -m buildgraph status --executor local --param device=cuda
P=/tmp/pool; rm -rf $P; mkdir -p $P/proj; cp $R/bench/gpu/gpupool.toml $P/proj/Buildfile.toml; cp $R/bench/gpu/probe.py $P/
cd $P/proj && python3 -m buildgraph run -j 3 2>&1 | tail -8
python3 - <<'PY'
import json
r = {n: json.load(open(f"{n}.json")) for n in ("g1", "g2", "g3")}
for n, v in r.items(): print(n, v["cvd"], v["count"], v["name"], round(v["start"], 2), round(v["end"], 2))
spans = sorted((v["start"], v["end"]) for v in r.values())
overlap = any(a[1] > b[0] for a, b in zip(spans, spans[1:]))
print("GPU POOL", "OVERLAP (BAD)" if overlap else "SERIALISED (OK)")
PY
