"""A GPU stage for bench/gpu/run.sh: holds the GPU for a second and records what it saw."""

import json
import os
import sys
import time

import torch

t = time.time()
x = torch.ones(1024, 1024, device="cuda")
torch.cuda.synchronize()
time.sleep(1.0)
seen = {
    "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "count": torch.cuda.device_count(),
    "name": torch.cuda.get_device_name(0),
    "start": t,
    "end": time.time(),
}
with open(sys.argv[1], "w") as out:
    json.dump(seen, out)
