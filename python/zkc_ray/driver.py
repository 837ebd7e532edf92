"""Prove a zkc generation on a Ray cluster, one Ray task per unit of work.

`zkc plan` fixes the token transcript and lists the units (one per step and stage); each unit
is a Ray task that runs `zkc prove-part` (stateless: it recomputes its witness from the artifact,
the keys and the plan, and writes its proof file atomically); `zkc bundle` then checks every
unit's proof and link and writes the ordinary bundle `zkc verify` reads.

Every node must see the artifact, the keys, the plan and the units' directory at the same paths
(a shared file system), and have the `zkc` binary (`--zkc`, default `zkc` on the PATH).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import schedule


class UnitKilled(Exception):
    """`zkc prove-part` was killed by a signal (the kernel's out-of-memory killer, a preempted
    node): worth retrying, unlike an error zkc reports, which would repeat."""


class UnitFailed(Exception):
    """`zkc prove-part` reported an error."""


def run_zkc(zkc, args):
    """Runs `zkc ARGS`; returns its stdout, the child's own peak RSS in bytes and its
    exit status."""
    proc = subprocess.Popen(
        [zkc, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = proc.stdout.read()
    proc.stdout.close()
    # wait4 gives this child's own resource usage (ru_maxrss in KiB on Linux).
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, usage.ru_maxrss * 1024, proc.returncode


def prove_unit(zkc, artifact, keys, plan, unit, units):
    """The body of one Ray task: proves unit `unit` into the directory `units`."""
    start = time.monotonic()
    out, rss, code = run_zkc(
        zkc,
        ["prove-part", artifact, "--keys", keys, "--plan", plan,
         "--unit", str(unit), "-o", units, "--json"],
    )
    if code < 0:
        raise UnitKilled(f"unit {unit}: zkc prove-part was killed by signal {-code}: {out[-2000:]}")
    if code != 0:
        raise UnitFailed(f"unit {unit}: zkc prove-part failed (exit {code}): {out[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = time.monotonic() - start
    # zkc's own peak (VmHWM); wait4's also counts the Ray worker it was spawned from.
    result["max_rss_bytes"] = result.get("peak_rss_bytes") or rss
    result["pid"] = os.getpid()
    return result


def progress(done, total, running, start, stream=sys.stderr):
    """One line of progress: a bar, the count, and the time left at the rate so far."""
    width = 30
    filled = width * done // max(total, 1)
    elapsed = time.monotonic() - start
    eta = elapsed / done * (total - done) if done else float("nan")
    line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} units, "
            f"{running} running, {elapsed:.0f} s elapsed, ~{eta:.0f} s left")
    if stream.isatty():
        stream.write("\r" + line)
        if done == total:
            stream.write("\n")
    else:
        stream.write(line + "\n")
    stream.flush()


def prove(args):
    import ray

    zkc = shutil.which(args.zkc) or args.zkc
    output = Path(args.output).resolve()
    units = Path(args.units).resolve() if args.units else output.with_name(output.name + ".units")
    units.mkdir(parents=True, exist_ok=True)
    artifact, keys = str(Path(args.artifact).resolve()), str(Path(args.keys).resolve())
    plan = units / "run.plan"
    prompt = ["--prompt", args.prompt] if args.prompt is not None else ["--tokens", args.tokens]
    out, _, code = run_zkc(zkc, ["plan", artifact, "--keys", keys, *prompt,
                                 "--max-new", str(args.max_new), "-o", str(plan)])
    if code != 0:
        sys.stderr.write(out)
        return 1
    print(out.strip())
    units_planned = json.loads(plan.read_text())["units"]

    if args.address:
        ray.init(address=args.address, logging_level="WARNING")
    else:
        ray.init(num_cpus=args.workers, include_dashboard=False,
                 object_store_memory=100 << 20, logging_level="WARNING")
    try:
        cluster_memory = ray.cluster_resources().get("memory", 0)
        task = ray.remote(prove_unit)
        # Largest first: the schedule's makespan is then within 4/3 of the best (LPT).
        order = sorted(units_planned, key=lambda u: -u["constraints"])
        pending = {}
        for u in order:
            memory = u["memory_bytes"]
            if cluster_memory and memory > cluster_memory:
                print(f"warning: unit {u['unit']} ({u['layer']}) may need {memory >> 20} MiB, more "
                      f"than the cluster's {int(cluster_memory) >> 20} MiB", file=sys.stderr)
                memory = int(cluster_memory)
            ref = task.options(
                num_cpus=1, memory=memory, max_retries=args.retries,
                retry_exceptions=[UnitKilled], name=f"zkc unit {u['unit']} {u['layer']}",
            ).remote(zkc, artifact, keys, str(plan), u["unit"], str(units))
            pending[ref] = u
        start = time.monotonic()
        results = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    results.append(ray.get(ref))
                except ray.exceptions.RayError as e:
                    # zkc's own message (or the last retry's): the other units' proofs stay
                    # in the directory, and a rerun proves only what is missing.
                    cause = getattr(e, "cause", None) or e
                    print(f"\nerror: unit {unit['unit']} ({unit['layer']}) failed: {cause}",
                          file=sys.stderr)
                    return 1
            progress(len(results), len(units_planned), min(len(pending), int(ray.cluster_resources().get("CPU", 1))), start)
        wall = time.monotonic() - start
    finally:
        ray.shutdown()
    report = {"workers": args.workers if not args.address else None, "wall_seconds": wall,
              "units": sorted(results, key=lambda r: r["unit"])}
    (units / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    out, _, code = run_zkc(zkc, ["bundle", os.path.join(keys, "vk"), "--plan", str(plan),
                                 "--units", str(units), "-o", str(output)])
    print(out.strip())
    return code


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zkc_ray", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prove", help="prove a generation on a Ray cluster")
    p.add_argument("artifact", help="the compiled model (zkc compile)")
    p.add_argument("--keys", required=True, help="the key directory (zkc setup)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--prompt", help="prompt text")
    which.add_argument("--tokens", help="prompt token ids, comma-separated")
    p.add_argument("--max-new", type=int, default=4, help="tokens to generate")
    p.add_argument("-o", "--output", required=True, help="the proof bundle to write")
    p.add_argument("--units", help="the directory for the plan and the units' proofs, on a file "
                   "system every node sees (default: OUTPUT.units)")
    p.add_argument("--address", help="a Ray cluster's address (`auto`, `ray://host:10001`); "
                   "without it, a local cluster of --workers CPUs")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="units proven at once on the local cluster")
    p.add_argument("--zkc", default="zkc", help="the zkc binary, at this path on every node")
    p.add_argument("--retries", type=int, default=3,
                   help="retries of a unit whose worker dies or whose zkc is killed")
    s = sub.add_parser("schedule", help="per-token latency on N workers from a run's report")
    s.add_argument("report", help="units/report.json from `prove`, or any JSON with per-unit "
                   "`step` and `seconds`")
    s.add_argument("--workers", default="1,4,16,64", help="worker counts, comma-separated")
    s.add_argument("--from-step", type=int, default=0,
                   help="only the units of this step and later (1 leaves out the first step, "
                   "whose units build the layers' matrices when no worker has cached them)")
    args = parser.parse_args(argv)
    if args.command == "prove":
        return prove(args)
    return schedule.main(args)
