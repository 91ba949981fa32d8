#!/usr/bin/env python3
"""Makes a target's checked-in corpus small (scripts/fuzz.sh --minimize).

libFuzzer's merge (what cargo fuzz cmin runs) keeps every input that adds an edge: for a
JSON parser well over a thousand files, most adding one error path each. This merges the
seeds and the pool the same way, measures each merged input's own edges (a merge of that
input alone), then keeps the seeds (the real examples) and adds, greedily, the input
covering the most edges not yet covered (the smaller on a tie), until LIMIT files or
nothing left to gain. It prints how much of the merged coverage that keeps.

usage: select_corpus.py FUZZ_BINARY SEED_DIR LIMIT OUT_DIR POOL_DIR...
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

binary, seed_dir, limit, out, pools = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]


def merge(output, inputs, control):
    """libFuzzer's merge into `output`, edges only; returns {file: edges it added}."""
    os.makedirs(output, exist_ok=True)
    if os.path.exists(control):
        os.remove(control)  # (an existing control file would resume an old merge)
    subprocess.run(
        [binary, "-merge=1", "-use_counters=0", f"-merge_control_file={control}", output, *inputs],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    lines = open(control).read().splitlines()
    files = lines[2 : 2 + int(lines[0])]
    added = {}
    for line in lines[2 + int(lines[0]) :]:
        if line.startswith("COV "):
            parts = line.split()
            added[files[int(parts[1])]] = set(parts[2:])
    return added


with tempfile.TemporaryDirectory() as scratch:
    merged = os.path.join(scratch, "merged")
    os.makedirs(merged)
    merge(merged, [seed_dir, *pools], os.path.join(scratch, "control"))
    seeds = [os.path.join(seed_dir, name) for name in sorted(os.listdir(seed_dir))]
    inputs = seeds + [os.path.join(merged, name) for name in sorted(os.listdir(merged))]
    edges = {}
    for n, path in enumerate(inputs):
        alone = os.path.join(scratch, f"alone{n}")
        os.makedirs(alone)
        shutil.copy(path, alone)
        # (a fresh output directory: merge counts what one holds as covered already)
        edges[path] = set().union(*merge(alone + ".out", [alone], os.path.join(scratch, "c")).values())
        shutil.rmtree(alone + ".out")
    everything = set().union(*edges.values())
    chosen, covered = [], set()
    for path in seeds:
        chosen.append(path)
        covered |= edges[path]
    candidates = [p for p in inputs if p not in seeds]
    while len(chosen) < limit and candidates:
        best = max(candidates, key=lambda p: (len(edges[p] - covered), -os.path.getsize(p)))
        if not edges[best] - covered:
            break
        chosen.append(best)
        covered |= edges[best]
        candidates.remove(best)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for path in chosen:
        data = open(path, "rb").read()
        name = "seed-" + os.path.basename(path) if path in seeds else hashlib.sha1(data).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(chosen)} files ({len(seeds)} seeds), covering {len(covered)} of the {len(everything)} edges of a full merge ({len(inputs) - len(seeds)} files)")
