#!/usr/bin/env python3
"""flowgrad against the PyTorch yardstick on the same Glow work.

For each configuration, runs one warm-up of each program, then PAIRS pairs
alternating flowgrad / PyTorch (A B A B ...), and prints training img/s,
sampling img/s, peak resident memory and the ratio flowgrad / PyTorch of
each pair, with the median over pairs. Both programs take the same options
and print one JSON line (examples/bench/bench_glow.c, shared/bench/torch_glow.py).

    compare_glow.py --flowgrad build/examples/bench/bench_glow \\
                    --torch ../shared/bench/torch_glow.py [--pairs 3] [--json]
"""
import argparse, json, os, statistics, subprocess, sys

CONFIGS = [
    ("K8 L2 h128 affine", ["--K", "8", "--L", "2", "--hidden", "128", "--coupling", "affine"]),
    ("K16 L2 h256 affine", ["--K", "16", "--L", "2", "--hidden", "256", "--coupling", "affine"]),
    ("K8 L2 h128 additive", ["--K", "8", "--L", "2", "--hidden", "128", "--coupling", "additive"]),
]
FIELDS = [("train_img_per_s", "train img/s"), ("sample_img_per_s", "sample img/s"),
          ("peak_rss_mb", "peak RSS MB")]


def run(cmd):
    env = dict(os.environ)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"compare_glow: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    line = [l for l in p.stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowgrad", required=True, help="the bench_glow program")
    ap.add_argument("--torch", required=True, help="torch_glow.py of the yardstick")
    ap.add_argument("--python", default="/usr/bin/python3", help="Python with torch (Debian's)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sample", type=int, default=64)
    ap.add_argument("--only", default="", help="run only configurations whose name contains this")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.steps < 1 or a.pairs < 1:
        ap.error("--steps and --pairs must be at least 1: the comparison times training")
    if not os.path.exists(a.torch):
        sys.exit(f"compare_glow: the yardstick {a.torch} is missing (pass --torch PATH)")
    common = ["--batch", str(a.batch), "--threads", str(a.threads), "--steps", str(a.steps),
              "--sample", str(a.sample), "--temperature", "0.7"]
    results = []
    for name, args in CONFIGS:
        if a.only and a.only not in name:
            continue
        fg_cmd = [a.flowgrad] + args + common
        pt_cmd = [a.python, a.torch] + args + common
        warm = ["--steps", "2", "--sample", "8"]
        run(fg_cmd + warm), run(pt_cmd + warm)
        pairs = []
        for i in range(a.pairs):
            f = run(fg_cmd)
            t = run(pt_cmd)
            pairs.append((f, t))
            print(f"{name} pair {i + 1}: flowgrad {f['train_img_per_s']:.1f} img/s, "
                  f"pytorch {t['train_img_per_s']:.1f} img/s", file=sys.stderr, flush=True)
        row = {"config": name, "flowgrad_gflop_per_s": statistics.median(f["train_gflop_per_s"] for f, _ in pairs)}
        for key, _ in FIELDS:
            fv = [f[key] for f, _ in pairs]
            tv = [t[key] for _, t in pairs]
            row[key] = {"flowgrad": statistics.median(fv), "pytorch": statistics.median(tv),
                        "ratio": statistics.median(x / y for x, y in zip(fv, tv))}
        results.append(row)
    if a.json:
        print(json.dumps({"batch": a.batch, "threads": a.threads, "steps": a.steps, "pairs": a.pairs,
                          "results": results}))
        return
    print(f"batch {a.batch}, {a.threads} threads, {a.steps} timed steps, {a.pairs} alternating pairs "
          f"(medians; ratio = flowgrad / PyTorch, median of per-pair ratios)")
    print(f"| config | {' | '.join(f'{h} flowgrad | PyTorch | ratio' for _, h in FIELDS)} | flowgrad GFLOP/s |")
    print("|---" * (1 + 3 * len(FIELDS) + 1) + "|")
    for r in results:
        cells = " | ".join(f"{r[k]['flowgrad']:.1f} | {r[k]['pytorch']:.1f} | {r[k]['ratio']:.2f}" for k, _ in FIELDS)
        print(f"| {r['config']} | {cells} | {r['flowgrad_gflop_per_s']:.1f} |")


if __name__ == "__main__":
    main()
