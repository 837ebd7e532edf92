"""What a token would cost on W workers, from measured unit times: each step's units are
independent, so a step's latency on W workers is the makespan of its units scheduled
longest-first (LPT, within 4/3 of the best schedule); a run's throughput is the makespan of all
its units over its steps."""

import heapq
import json


def makespan(seconds, workers):
    """The finish time of the jobs `seconds` on `workers` identical workers, longest first,
    each to the worker free soonest."""
    free = [0.0] * workers
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def latencies(units, workers):
    """(mean per-step latency, run makespan per step) for a list of units with `step` and
    `seconds`."""
    steps = {}
    for u in units:
        steps.setdefault(u["step"], []).append(u["seconds"])
    per_step = [makespan(s, workers) for s in steps.values()]
    whole = makespan([u["seconds"] for u in units], workers)
    return sum(per_step) / len(per_step), whole / len(steps)


def main(args):
    units = [u for u in json.load(open(args.report))["units"] if u["step"] >= args.from_step]
    if not units:
        print(f"no units from step {args.from_step} on")
        return 1
    total = sum(u["seconds"] for u in units)
    steps = len({u["step"] for u in units})
    print(f"{len(units)} units over {steps} steps, {total:.1f} s of proving in all "
          f"({total / steps:.1f} s per step on one worker)")
    print("| workers | latency per token (its units at once) | run time per token (all units at once) |")
    print("| --- | --- | --- |")
    for w in [int(w) for w in args.workers.split(",")]:
        step, run = latencies(units, w)
        print(f"| {w} | {step:.1f} s | {run:.1f} s |")
    return 0
