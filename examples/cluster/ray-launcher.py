"""Entropy-patch FineWeb-Edu (sample-10BT) on a Ray cluster: one task per GPU.

    python examples/cluster/ray-launcher.py --output /shared/out --ranks 64

Each task runs `blt ingest` as rank i of N (RANK / WORLD_SIZE). Ray retries a task whose
node dies (max_retries); the retried rank resumes after its last complete shard. The output
folder and HF_HOME must be on storage every node sees.
"""
import argparse
import os
import subprocess

import ray


@ray.remote(num_gpus=1, max_retries=3)
def rank_task(rank: int, world_size: int, output: str) -> int:
    cmd = [
        "blt", "ingest",
        "--model", "facebook/blt-entropy", "--device", "cuda:0",
        "--hf-dataset", "HuggingFaceFW/fineweb-edu", "--hf-config", "sample-10BT", "--split", "train",
        "--id-column", "id",
        "--format", "arrow",
        "--output", output,
        "--no-progress",
    ]
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size))
    return subprocess.run(cmd, env=env, check=True).returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--ranks", type=int, default=64)
    args = parser.parse_args()
    ray.init()
    ray.get([rank_task.remote(r, args.ranks, args.output) for r in range(args.ranks)])
    subprocess.run(["blt", "merge-stats", args.output], check=True)


if __name__ == "__main__":
    main()
