"""``dedupe stats --format prometheus`` (what ``--metrics-file`` adds to every backup,
prune and check) on a repository of many small nightly LXD backups, A/B interleaved:
the same command run by two source trees in turn (an older commit's, ``git archive``d,
and this one's), each round both, their output compared byte for byte (but for the
``dedupe_metrics_timestamp_seconds`` line).

    python benchmarks/ui_repo.py /var/tmp/stats-bench --instances 40 --nights 50 --files 20 --shared-kib 16
    mkdir /var/tmp/stats-old && git archive OLD dedupe repo_format | tar -x -C /var/tmp/stats-old
    python benchmarks/stats_scale.py /var/tmp/stats-bench --tree old=/var/tmp/stats-old --tree new=. --rounds 5

The repository is benchmarks/ui_repo.py's (2,100 backups: 40 instances' tars and two
stream records a night for 50 nights; the item chunks of unchanged parts repeat from
night to night). Wall seconds and the child's user+sys CPU seconds per run; medians and
the per-round ratios to the first tree.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(tree: Path, repo: Path, env: dict[str, str]) -> tuple[float, float, bytes]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dedupe", "--repo", str(repo), "stats", "--format", "prometheus"],
                          env={**env, "PYTHONPATH": str(tree.resolve())}, capture_output=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # the one line that changes from run to run: when the metrics were computed
    out = b"".join(line for line in done.stdout.splitlines(keepends=True)
                   if not line.startswith(b"dedupe_metrics_timestamp_seconds "))
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--tree", action="append", required=True, metavar="LABEL=DIR",
                    help="a source tree to run dedupe from (PYTHONPATH); the first is the baseline")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1])) for t in a.tree]
    env = {**os.environ, "DEDUPE_PASSPHRASE": os.environ.get("DEDUPE_PASSPHRASE", "bench")}
    for label, tree in trees:  # which dedupe each tree runs, and a warm-up (page cache, local storage cache)
        where = subprocess.run([sys.executable, "-c", "import dedupe; print(dedupe.__file__)"], check=True, text=True,
                               env={**env, "PYTHONPATH": str(tree.resolve())}, capture_output=True).stdout.strip()
        print(f"{label}: {where}", file=sys.stderr)
        run_once(tree, a.repo, env)
    walls: dict[str, list[float]] = {label: [] for label, _ in trees}
    cpus: dict[str, list[float]] = {label: [] for label, _ in trees}
    outputs: dict[str, bytes] = {}
    for r in range(a.rounds):
        for label, tree in trees if r % 2 == 0 else list(reversed(trees)):
            wall, cpu, out = run_once(tree, a.repo, env)
            walls[label].append(wall)
            cpus[label].append(cpu)
            outputs.setdefault(label, out)
            if out != outputs[label]:
                print(f"round {r + 1}: {label}'s output differs from its first", file=sys.stderr)
        print(f"round {r + 1}: " + ", ".join(f"{lb} {walls[lb][-1]:.2f} s wall {cpus[lb][-1]:.2f} s cpu"
                                             for lb, _ in trees) + f"  (load {os.getloadavg()[0]:.1f})",
              file=sys.stderr)
    base = trees[0][0]
    same = all(outputs[lb] == outputs[base] for lb, _ in trees)
    lines = outputs[base].count(b"\n")
    print(f"| tree | wall s (median) | user+sys s (median) | per-round wall ratio to {base} |")
    print("|---|---|---|---|")
    for label, _ in trees:
        ratios = ", ".join(f"{w / b:.2f}" for w, b in zip(walls[label], walls[base]))
        print(f"| {label} | {statistics.median(walls[label]):.2f} | {statistics.median(cpus[label]):.2f} | {ratios} |")
    print(f"\noutputs identical: {same} ({lines} lines); rounds: {a.rounds}")


if __name__ == "__main__":
    main()
