#!/usr/bin/env python3
"""Side-by-side benchmark of EZKL and zkc on the ONNX fixtures (tests/fixtures/onnx/).

Run it through scripts/ezkl_compare.sh (which makes the pinned venv target/ezkl-venv). Not part
of the tests (not in .ci/run): EZKL's keys for the gpt2_block take minutes and GBs.

For each model NAME (--models, default all four fixtures), on the same NAME.onnx and NAME.input.json:

EZKL (Python bindings, each step in a fresh subprocess of this interpreter, timed inside it and
its peak RSS taken by /usr/bin/time, or from wait4()'s rusage without it):
  gen_settings        default run args, stated explicitly: input public, params fixed,
                      output public (no hashing, no KZG-committed visibility)
  calibrate_settings  on NAME.calibration.json (16 samples, concatenated in the one input list:
                      see scripts/onnx_fixtures.py), target "resources" (EZKL's smallest
                      logrows, then the largest scales that fit)
  compile_circuit, gen_witness (no SRS needed: EZKL's quantized forward pass)
  gen_srs             a LOCAL, INSECURE SRS (toxic waste known to the generator) for the
                      settings' logrows: for benchmarking only; nothing is downloaded. Cached
                      in WORK/srs/kzgK.srs and reused across models and runs
  setup, prove, verify
Recorded: the time and peak RSS of every step; proof size (the proof JSON file, and the raw
proof bytes inside it), pk, vk and SRS sizes; logrows, EZKL's num_rows (rows used; EZKL is a
PLONKish/halo2 system, so rows stand where R1CS counts constraints), total assignments and
constants; the error of EZKL's rescaled outputs (the proof's pretty_public_inputs) against
onnxruntime's (NAME.output.json; the witness's pretty_elements where no proof was made): max
abs, max relative (element-wise, over |ref| > 1e-6) and
max abs / max |ref|.

zkc: run_zkc() below runs the zkc binary (--zkc, default target/release/zkc) with the
commands of the ONNX frontend and measures the same figures; any failure is reported as
"zkc: <error>" in the table and the rest goes on. --no-zkc skips it.

Output: a markdown table per model (stdout, and --md FILE), JSON of everything to --out FILE.

EZKL's SRS, keys and prover memory grow as 2^logrows: measured on the mlp here, 2^15 -> 2^17
took the pk from 132 to 528 MiB, setup's peak RSS from 220 to 809 MiB and prove's from 331 MiB
to 1.26 GiB, and gen_srs from 17 s to 172 s. So past gen_witness the pipeline stops when
calibrate picks logrows above --max-run-logrows (default 20: at 2^21 prove would need ~20 GiB,
at 2^22 ~40, on a 24 GiB machine). EZKL calibrates the gpt2_block to logrows 26 (the causal
mask's -10000, at scale 2^13, puts its exp lookups' inputs down to -1.6e8); with
--max-logrows 22 it finds scales 2^11 that fit 2^22 (with 21 and below: none).

Usage:
  bash scripts/ezkl_compare.sh [--models mlp,gpt2_block] [--no-zkc] [--no-ezkl] [--out FILE]
        [--md FILE] [--zkc PATH] [--work DIR] [--timeout SECONDS] [--max-logrows K]
        [--max-run-logrows K] [--mem-limit-gib G]
"""
import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_MODELS = ["mlp", "convnet", "gpt2_block", "decomposed"]
STEP_MARK = "@@EZKL_STEP_RESULT@@ "
TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
CALIBRATION_TARGET = "resources"
VISIBILITY = {"input": "public", "param": "fixed", "output": "public"}


# --- EZKL steps, run in the worker subprocess ---------------------------------------------------


def ezkl_worker(step, args):
    """Runs one EZKL step in this (fresh) process and prints its time and result on a marked line."""
    import ezkl

    t0 = time.perf_counter()
    if step == "gen_settings":
        run_args = ezkl.PyRunArgs()
        run_args.input_visibility = VISIBILITY["input"]
        run_args.param_visibility = VISIBILITY["param"]
        run_args.output_visibility = VISIBILITY["output"]
        res = ezkl.gen_settings(args["model"], args["settings"], py_run_args=run_args)
    elif step == "calibrate_settings":
        kw = {"max_logrows": args["max_logrows"]} if args.get("max_logrows") else {}
        res = ezkl.calibrate_settings(args["data"], args["model"], args["settings"], args["target"], **kw)
    elif step == "compile_circuit":
        res = ezkl.compile_circuit(args["model"], args["compiled"], args["settings"])
    elif step == "gen_srs":
        res = ezkl.gen_srs(args["srs"], args["logrows"])
    elif step == "gen_witness":
        res = ezkl.gen_witness(args["data"], args["compiled"], args["witness"])
    elif step == "setup":
        res = ezkl.setup(args["compiled"], args["vk"], args["pk"], args["srs"])
    elif step == "prove":
        res = ezkl.prove(args["witness"], args["compiled"], args["pk"], args["proof"], args["srs"])
    elif step == "verify":
        res = ezkl.verify(args["proof"], args["settings"], args["vk"], args["srs"])
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - t0
    if not isinstance(res, (bool, type(None))):
        res = type(res).__name__  # the witness and proof come back as dicts: they are in the files
    print(STEP_MARK + json.dumps({"seconds": seconds, "result": res}), flush=True)


# --- measuring a subprocess -----------------------------------------------------------------------


def measure(cmd, log_prefix, timeout, cwd=None, mem_limit_gib=None):
    """Runs cmd in its own process group; returns wall time, peak RSS (KiB), exit code, and its
    stdout and stderr (kept in LOG_PREFIX.out / .err). The peak RSS is /usr/bin/time's %M where
    that exists, else wait4()'s ru_maxrss of the child (which starts at this process's RSS at the
    fork: a floor of ~30-60 MiB under small steps). mem_limit_gib caps its address space (RLIMIT_AS), so that
    a step too big for the machine fails by itself instead of calling the OOM killer on its
    neighbours."""
    def limit():
        if mem_limit_gib:
            import resource
            cap = int(mem_limit_gib * (1 << 30))
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out_path, err_path = log_prefix + ".out", log_prefix + ".err"
    rss_path = log_prefix + ".rss"
    if os.path.exists(rss_path):
        os.remove(rss_path)
    if TIME_BIN:
        cmd = [TIME_BIN, "-f", "%M", "-o", rss_path] + list(cmd)
    timed_out = []
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, start_new_session=True,
                                preexec_fn=limit)

        def kill():
            timed_out.append(True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    peak, how = usage.ru_maxrss, "wait4"
    if TIME_BIN:
        try:
            with open(rss_path) as f:
                peak, how = int(f.read().split()[-1]), "/usr/bin/time"
        except (OSError, ValueError, IndexError):
            pass
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    with open(err_path, errors="replace") as f:
        stderr = f.read()
    return {
        "cmd": [str(c) for c in cmd],
        "rc": proc.returncode,
        "wall_s": wall,
        "peak_rss_kib": peak,
        "peak_rss_from": how,
        "timed_out": bool(timed_out),
        "stdout": stdout,
        "stderr": stderr,
    }


def last_lines(text, n=3):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])[-400:]


class StepFailed(Exception):
    pass


# --- output error ---------------------------------------------------------------------------------


def flatten_numbers(obj):
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [float(obj)]
    if isinstance(obj, str):
        return [float(obj)]
    if isinstance(obj, list):
        return [v for x in obj for v in flatten_numbers(x)]
    raise ValueError(f"not a number or list of numbers: {str(obj)[:80]}")


def output_error(got, ref):
    if len(got) != len(ref):
        return {"error": f"output has {len(got)} values, onnxruntime's {len(ref)}"}
    diffs = [abs(g - r) for g, r in zip(got, ref)]
    rels = [d / abs(r) for d, r in zip(diffs, ref) if abs(r) > 1e-6]
    max_ref = max(abs(r) for r in ref)
    return {
        "values": len(ref),
        "max_abs": max(diffs),
        "max_rel": max(rels) if rels else None,
        "max_abs_over_max_ref": max(diffs) / max_ref if max_ref > 0 else None,
        "mean_abs": sum(diffs) / len(diffs),
    }


def reference_output(fixtures, name):
    with open(os.path.join(fixtures, f"{name}.output.json")) as f:
        ref = json.load(f)
    return flatten_numbers(ref["output_data"]), ref


def check_reference(fixtures, name, ref_values):
    """Reruns onnxruntime on the fixture input (this venv's version) as a check of NAME.output.json."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        return f"not checked ({e})"
    with open(os.path.join(fixtures, f"{name}.input.json")) as f:
        x = flatten_numbers(json.load(f)["input_data"])
    sess = ort.InferenceSession(os.path.join(fixtures, f"{name}.onnx"), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    (out,) = sess.run(None, {inp.name: np.asarray(x, dtype=np.float32).reshape(inp.shape)})
    err = float(np.max(np.abs(out.reshape(-1) - np.asarray(ref_values))))
    return f"onnxruntime {ort.__version__} reproduces NAME.output.json to {err:.1e}"


# --- EZKL pipeline --------------------------------------------------------------------------------


def run_ezkl(name, fixtures, work, timeout, max_logrows=None, max_run_logrows=20, mem_limit_gib=None):
    """EZKL's pipeline on one fixture. max_logrows goes to calibrate_settings (None: EZKL's
    default); a calibrated logrows above max_run_logrows stops before the SRS (its generation
    and the keys grow as 2^logrows: at 26, hours and hundreds of GB here)."""
    d = os.path.join(work, "ezkl", name)
    os.makedirs(d, exist_ok=True)
    srs_dir = os.path.join(work, "srs")
    os.makedirs(srs_dir, exist_ok=True)
    p = {
        "model": os.path.join(fixtures, f"{name}.onnx"),
        "input": os.path.join(fixtures, f"{name}.input.json"),
        "calibration": os.path.join(fixtures, f"{name}.calibration.json"),
        "settings": os.path.join(d, "settings.json"),
        "compiled": os.path.join(d, "model.compiled"),
        "witness": os.path.join(d, "witness.json"),
        "vk": os.path.join(d, "vk.key"),
        "pk": os.path.join(d, "pk.key"),
        "proof": os.path.join(d, "proof.json"),
    }
    res = {"tool": "ezkl", "steps": {}, "dir": d}

    def step(stepname, args):
        print(f"  ezkl {name}: {stepname} ...", file=sys.stderr, flush=True)
        m = measure(
            [sys.executable, os.path.abspath(__file__), "--ezkl-step", stepname, json.dumps(args)],
            os.path.join(d, stepname), timeout, mem_limit_gib=mem_limit_gib,
        )
        rec = {"wall_s": m["wall_s"], "peak_rss_kib": m["peak_rss_kib"], "rc": m["rc"]}
        for line in m["stdout"].splitlines():
            if line.startswith(STEP_MARK):
                r = json.loads(line[len(STEP_MARK):])
                rec["seconds"], rec["result"] = r["seconds"], r["result"]
        res["steps"][stepname] = rec
        if m["timed_out"]:
            raise StepFailed(f"{stepname}: timed out after {timeout} s")
        if m["rc"] != 0 or "seconds" not in rec:
            raise StepFailed(f"{stepname}: exit {m['rc']}: {last_lines(m['stderr'] or m['stdout'])}")
        if rec["result"] is False:
            raise StepFailed(f"{stepname}: returned False")
        print(f"  ezkl {name}: {stepname} {rec['seconds']:.2f} s, peak RSS "
              f"{rec['peak_rss_kib'] / 1024:.0f} MiB", file=sys.stderr, flush=True)
        return rec

    try:
        step("gen_settings", {"model": p["model"], "settings": p["settings"]})
        step("calibrate_settings", {"data": p["calibration"], "model": p["model"],
                                    "settings": p["settings"], "target": CALIBRATION_TARGET,
                                    "max_logrows": max_logrows})
        with open(p["settings"]) as f:
            settings = json.load(f)
        ra = settings["run_args"]
        res["settings"] = {
            "logrows": ra["logrows"],
            "num_rows": settings.get("num_rows"),
            "total_assignments": settings.get("total_assignments"),
            "total_const_size": settings.get("total_const_size"),
            "input_scale": ra.get("input_scale"),
            "param_scale": ra.get("param_scale"),
            "scale_rebase_multiplier": ra.get("scale_rebase_multiplier"),
            "lookup_range": ra.get("lookup_range"),
            "required_lookups": settings.get("required_lookups"),
            "required_range_checks": settings.get("required_range_checks"),
            "visibility": {k: ra.get(f"{k}_visibility") for k in ("input", "param", "output")},
            "check_mode": ra.get("check_mode"),
            "version": settings.get("version"),
        }
        res["settings"]["calibrate_max_logrows"] = max_logrows
        logrows = ra["logrows"]
        step("compile_circuit", {"model": p["model"], "compiled": p["compiled"], "settings": p["settings"]})
        # the witness (EZKL's quantized forward pass, hence its output error) needs no SRS
        step("gen_witness", {"data": p["input"], "compiled": p["compiled"], "witness": p["witness"]})
        if logrows > max_run_logrows:
            raise StepFailed(
                f"calibrated to logrows {logrows} (above --max-run-logrows {max_run_logrows}): "
                f"SRS, setup and proof not run (an SRS of 2^{logrows} points, keys growing as "
                f"2^logrows); the output error is the witness's"
                + ("" if max_logrows else "; try --max-logrows for calibrate"))
        srs = os.path.join(srs_dir, f"kzg{logrows}.srs")
        srs_info = srs + ".json"  # how long its generation took, when this script made it
        if os.path.exists(srs):
            res["srs"] = {"path": srs, "generated": False}
            if os.path.exists(srs_info):
                with open(srs_info) as f:
                    res["srs"]["generation"] = json.load(f)
        else:
            tmp = srs + ".tmp"
            rec = step("gen_srs", {"srs": tmp, "logrows": logrows})
            os.replace(tmp, srs)
            gen = {"seconds": rec["seconds"], "peak_rss_kib": rec["peak_rss_kib"],
                   "loadavg": os.getloadavg()}
            with open(srs_info, "w") as f:
                json.dump(gen, f)
            res["srs"] = {"path": srs, "generated": True, "generation": gen}
        res["srs"]["bytes"] = os.path.getsize(srs)
        res["srs"]["note"] = "local ezkl.gen_srs: INSECURE (known toxic waste), for benchmarking only"
        step("setup", {"compiled": p["compiled"], "vk": p["vk"], "pk": p["pk"], "srs": srs})
        step("prove", {"witness": p["witness"], "compiled": p["compiled"], "pk": p["pk"],
                       "proof": p["proof"], "srs": srs})
        step("verify", {"proof": p["proof"], "settings": p["settings"], "vk": p["vk"], "srs": srs})
    except StepFailed as e:
        res["error"] = str(e)

    sizes = {}
    for key in ("pk", "vk", "proof", "compiled", "witness"):
        if os.path.exists(p[key]):
            sizes[key] = os.path.getsize(p[key])
    if os.path.exists(p["proof"]):
        with open(p["proof"]) as f:
            proof = json.load(f)
        if isinstance(proof.get("proof"), list):
            sizes["proof_raw"] = len(proof["proof"])
        elif isinstance(proof.get("hex_proof"), str):
            sizes["proof_raw"] = (len(proof["hex_proof"]) - 2) // 2
        sizes["public_instances"] = sum(len(x) for x in proof.get("instances") or [])
        outs = (proof.get("pretty_public_inputs") or {}).get("rescaled_outputs")
        if outs is not None:
            res["outputs"] = flatten_numbers(outs)
            res["outputs_from"] = "proof pretty_public_inputs.rescaled_outputs"
    if "outputs" not in res and os.path.exists(p["witness"]):
        with open(p["witness"]) as f:
            w = json.load(f)
        outs = (w.get("pretty_elements") or {}).get("rescaled_outputs")
        if outs is not None:
            res["outputs"] = flatten_numbers(outs)
            res["outputs_from"] = "witness pretty_elements.rescaled_outputs"
    res["sizes"] = sizes
    return res


# --- zkc ------------------------------------------------------------------------------------------


def zkc_output_values(obj):
    """The model output in zkc's --json: a list of numbers (nested or not), or an object holding
    it under output_data / data / values / output."""
    if isinstance(obj, dict):
        for key in ("output_data", "data", "values", "output", "outputs"):
            if key in obj:
                return zkc_output_values(obj[key])
        raise ValueError(f"no output values among keys {sorted(obj)}")
    return flatten_numbers(obj)


def parse_json_stdout(text):
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # the last line that is a JSON document
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        raise


def count_constraints(stats):
    """Sum of the layers' constraints in `zkc compile --emit stats --json` (best effort: the
    first numeric field named like *constraints* in each layer, or a top-level total)."""
    if isinstance(stats, dict):
        for key in ("total_constraints", "constraints"):
            if isinstance(stats.get(key), (int, float)):
                return int(stats[key])
        for key in ("layers", "circuits"):
            if isinstance(stats.get(key), list):
                return count_constraints(stats[key])
    if isinstance(stats, list):
        total = 0
        for layer in stats:
            n = count_constraints(layer)
            if n is None:
                return None
            total += n
        return total
    return None


# ======================================================================================
# run_zkc: zkc's side of the comparison. The ONNX frontend's commands (being built):
#   zkc compile NAME.onnx -o DIR/NAME.circ --calibrate NAME.calibration.json
#   zkc setup DIR/NAME.circ -o DIR/NAME.keys
#   zkc prove DIR/NAME.circ --keys DIR/NAME.keys --input NAME.input.json -o DIR/NAME.zkp
#   zkc verify DIR/NAME.keys/vk DIR/NAME.zkp --json
# Proof size: the .zkp file; pk: the sum of DIR/NAME.keys/layer-*.pk; vk: DIR/NAME.keys/vk.
# Output: `zkc verify --json`'s "output" field if it has one, else
#   zkc run DIR/NAME.circ --input NAME.input.json --json
# Constraints (best effort): zkc compile NAME.onnx --emit stats --json --calibrate ...
# Any failure ends zkc's run for this model with res["error"] = "zkc: <error>".
# ======================================================================================
def run_zkc(name, fixtures, work, zkc, timeout, mem_limit_gib=None):
    d = os.path.join(work, "zkc", name)
    os.makedirs(d, exist_ok=True)
    onnx_path = os.path.join(fixtures, f"{name}.onnx")
    inp = os.path.join(fixtures, f"{name}.input.json")
    cal = os.path.join(fixtures, f"{name}.calibration.json")
    circ = os.path.join(d, f"{name}.circ")
    keys = os.path.join(d, f"{name}.keys")
    zkp = os.path.join(d, f"{name}.zkp")
    res = {"tool": "zkc", "steps": {}, "dir": d, "sizes": {}}

    def step(stepname, args, need_ok=True):
        print(f"  zkc {name}: {stepname} ...", file=sys.stderr, flush=True)
        m = measure([zkc] + args, os.path.join(d, stepname), timeout, mem_limit_gib=mem_limit_gib)
        res["steps"][stepname] = {"seconds": m["wall_s"], "wall_s": m["wall_s"],
                                  "peak_rss_kib": m["peak_rss_kib"], "rc": m["rc"]}
        if m["timed_out"]:
            raise StepFailed(f"{stepname}: timed out after {timeout} s")
        if need_ok and m["rc"] != 0:
            raise StepFailed(f"{stepname}: exit {m['rc']}: {last_lines(m['stderr'] or m['stdout'])}")
        print(f"  zkc {name}: {stepname} {m['wall_s']:.2f} s (rc {m['rc']}), peak RSS "
              f"{m['peak_rss_kib'] / 1024:.0f} MiB", file=sys.stderr, flush=True)
        return m

    try:
        if not os.path.exists(zkc):
            raise StepFailed(f"no zkc binary at {zkc}")
        shutil.rmtree(keys, ignore_errors=True)
        for f in (circ, zkp):
            if os.path.exists(f):
                os.remove(f)
        step("compile", ["compile", onnx_path, "-o", circ, "--calibrate", cal])
        try:
            m = step("stats", ["compile", onnx_path, "--emit", "stats", "--json", "--calibrate", cal])
            res["constraints"] = count_constraints(parse_json_stdout(m["stdout"]))
        except (StepFailed, ValueError) as e:
            res["constraints_error"] = str(e)
        step("setup", ["setup", circ, "-o", keys])
        step("prove", ["prove", circ, "--keys", keys, "--input", inp, "-o", zkp])
        m = step("verify", ["verify", os.path.join(keys, "vk"), zkp, "--json"])
        verdict = parse_json_stdout(m["stdout"])
        res["verify_json"] = verdict
        out = None
        if isinstance(verdict, dict) and "output" in verdict:
            out, res["outputs_from"] = verdict["output"], "zkc verify --json: output"
        else:
            m = step("run", ["run", circ, "--input", inp, "--json"])
            out, res["outputs_from"] = parse_json_stdout(m["stdout"]), "zkc run --json"
        res["outputs"] = zkc_output_values(out)
    except (StepFailed, ValueError, OSError) as e:
        res["error"] = f"zkc: {e}"

    if os.path.exists(zkp):
        res["sizes"]["proof"] = os.path.getsize(zkp)
    if os.path.isdir(keys):
        pks = [f for f in os.listdir(keys) if f.startswith("layer-") and f.endswith(".pk")]
        if pks:
            res["sizes"]["pk"] = sum(os.path.getsize(os.path.join(keys, f)) for f in pks)
            res["sizes"]["pk_files"] = len(pks)
        if os.path.exists(os.path.join(keys, "vk")):
            res["sizes"]["vk"] = os.path.getsize(os.path.join(keys, "vk"))
        res["sizes"]["keys_dir"] = sum(os.path.getsize(os.path.join(keys, f)) for f in os.listdir(keys))
    return res


# --- report ---------------------------------------------------------------------------------------


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit} ({n} B)"
    return f"{n} B"


def fmt_s(rec):
    return f"{rec['seconds']:.2f} s" if rec and "seconds" in rec else "-"


def fmt_rss(rec):
    return f"{rec['peak_rss_kib'] / 1024:.0f} MiB" if rec and rec.get("peak_rss_kib") else "-"


def fmt_err(v, kind="abs"):
    return "-" if v is None else f"{v:.3g}"


def column(r):
    """A tool's cells, by row label."""
    if r is None:
        return {}
    st = r.get("steps", {})
    sz = r.get("sizes", {})
    err = r.get("output_error") or {}
    c = {}
    if r["tool"] == "ezkl":
        s = r.get("settings") or {}
        if s:
            c["circuit size"] = (f"logrows {s['logrows']} (2^{s['logrows']} = {2 ** s['logrows']} rows), "
                                 f"{s['num_rows']} rows used")
            c["assignments / constants"] = f"{s['total_assignments']} / {s['total_const_size']}"
            c["scales (input, param, rebase x)"] = (f"2^{s['input_scale']}, 2^{s['param_scale']}, "
                                                    f"{s['scale_rebase_multiplier']}")
            vis = s["visibility"]
            c["visibility (input/param/output)"] = f"{vis['input']}/{vis['param']}/{vis['output']}"
            if s.get("calibrate_max_logrows"):
                c["calibrate max_logrows"] = str(s["calibrate_max_logrows"])
        if "calibrate_settings" in st:
            c["calibrate + compile"] = fmt_s(st["calibrate_settings"]) + (
                " + " + fmt_s(st["compile_circuit"]) if "compile_circuit" in st else "")
        c["witness generation"] = fmt_s(st.get("gen_witness"))
        srs = r.get("srs")
        if srs:
            gen = srs.get("generation")
            c["SRS (local, insecure)"] = fmt_bytes(srs.get("bytes")) + (
                f", generated in {gen['seconds']:.1f} s" if gen else "") + (
                "" if srs.get("generated") else " (cached)")
    else:
        if r.get("constraints") is not None:
            c["circuit size"] = f"{r['constraints']} constraints (R1CS)"
        if "compile" in st:
            c["calibrate + compile"] = fmt_s(st["compile"])
        c["witness generation"] = "(in prove)"
    c["setup time"] = fmt_s(st.get("setup"))
    c["setup peak RSS"] = fmt_rss(st.get("setup"))
    c["prove time"] = fmt_s(st.get("prove"))
    c["prove peak RSS"] = fmt_rss(st.get("prove"))
    c["verify time"] = fmt_s(st.get("verify"))
    c["verify peak RSS"] = fmt_rss(st.get("verify"))
    if r["tool"] == "ezkl" and "proof" in sz:
        c["proof size"] = f"{fmt_bytes(sz['proof'])} JSON file; {fmt_bytes(sz.get('proof_raw'))} raw proof"
    else:
        c["proof size"] = fmt_bytes(sz.get("proof"))
    c["pk size"] = fmt_bytes(sz.get("pk"))
    if "keys_dir" in sz:
        c["pk size"] += f" ({fmt_bytes(sz['keys_dir'])} in the keys folder)"
    c["vk size"] = fmt_bytes(sz.get("vk"))
    if "error" in err:
        c["output max abs error"] = err["error"]
    else:
        c["output max abs error"] = fmt_err(err.get("max_abs"))
        c["output max rel error"] = fmt_err(err.get("max_rel"))
        c["max abs / max abs ref"] = fmt_err(err.get("max_abs_over_max_ref"))
    if r.get("error"):
        c["error"] = r["error"]
    return c


ROWS = [
    "circuit size", "assignments / constants", "scales (input, param, rebase x)",
    "visibility (input/param/output)", "calibrate max_logrows", "calibrate + compile", "SRS (local, insecure)",
    "witness generation", "setup time", "setup peak RSS", "prove time", "prove peak RSS",
    "verify time", "verify peak RSS", "proof size", "pk size",
    "vk size", "output max abs error", "output max rel error", "max abs / max abs ref", "error",
]


def markdown(model, ez, zk, ez_label, ref_note):
    cols = [(ez_label, column(ez))] if ez is not None else []
    if zk is not None:
        cols.append(("zkc", column(zk)))
    lines = [f"### {model}", ""]
    if ref_note:
        lines += [f"Reference: {ref_note}.", ""]
    lines.append("| | " + " | ".join(label for label, _ in cols) + " |")
    lines.append("| --- |" + " --- |" * len(cols))
    for row in ROWS:
        cells = [c.get(row, "-") for _, c in cols]
        if all(x == "-" for x in cells):
            continue
        lines.append(f"| {row} | " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--ezkl-step":
        ezkl_worker(sys.argv[2], json.loads(sys.argv[3]))
        return

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated fixture names")
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "fixtures", "onnx"))
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "ezkl-bench"),
                    help="where keys, proofs, logs and the SRS go")
    ap.add_argument("--zkc", default=os.path.join(ROOT, "target", "release", "zkc"))
    ap.add_argument("--no-zkc", action="store_true", help="skip zkc")
    ap.add_argument("--no-ezkl", action="store_true", help="skip EZKL")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per step (default 3600)")
    ap.add_argument("--max-logrows", type=int,
                    help="EZKL: max_logrows for calibrate_settings (default: EZKL's own)")
    ap.add_argument("--max-run-logrows", type=int, default=20,
                    help="EZKL: stop before the SRS when calibrated above this (default 20)")
    ap.add_argument("--mem-limit-gib", type=float, default=20,
                    help="address-space cap of every step, EZKL's and zkc's (default 20; 0: none)")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "ezkl-bench", "compare.json"),
                    help="JSON of all figures")
    ap.add_argument("--md", help="also write the markdown tables here")
    a = ap.parse_args()

    models = [m for m in a.models.split(",") if m]
    for m in models:
        if not os.path.exists(os.path.join(a.fixtures, f"{m}.onnx")):
            sys.exit(f"no fixture {m}.onnx in {a.fixtures} (bash scripts/onnx_fixtures.sh writes them)")
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    zkc = os.path.abspath(a.zkc)

    ezkl_version = None
    if not a.no_ezkl:
        try:
            from importlib.metadata import version
            ezkl_version = version("ezkl")
        except Exception:
            ezkl_version = "?"
    env = {
        "python": platform.python_version(),
        "ezkl": ezkl_version,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "calibration_target": CALIBRATION_TARGET,
        "ezkl_visibility": VISIBILITY,
        "srs": "generated locally with ezkl.gen_srs: insecure, for benchmarking only",
    }
    results = {"env": env, "models": {}}
    tables = []
    for m in models:
        print(f"== {m}", file=sys.stderr, flush=True)
        ref, _ = reference_output(a.fixtures, m)
        ref_note = check_reference(a.fixtures, m, ref).replace("NAME", m)
        ez = zk = None
        if not a.no_ezkl:
            t0 = time.perf_counter()
            ez = run_ezkl(m, a.fixtures, work, a.timeout, a.max_logrows, a.max_run_logrows,
                          a.mem_limit_gib or None)
            ez["total_wall_s"] = time.perf_counter() - t0
            if "outputs" in ez:
                ez["output_error"] = output_error(ez["outputs"], ref)
        if not a.no_zkc:
            t0 = time.perf_counter()
            zk = run_zkc(m, a.fixtures, work, zkc, a.timeout, a.mem_limit_gib or None)
            zk["total_wall_s"] = time.perf_counter() - t0
            if "outputs" in zk:
                try:
                    zk["output_error"] = output_error(zk["outputs"], ref)
                except (ValueError, ZeroDivisionError) as e:
                    zk["output_error"] = {"error": f"zkc: {e}"}
        results["models"][m] = {"reference": ref_note, "ezkl": ez, "zkc": zk,
                                "loadavg_after": os.getloadavg()}
        table = markdown(m, ez, zk, f"EZKL {ezkl_version}", ref_note)
        tables.append(table)
        print(table, flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")

    head = (f"EZKL {ezkl_version} vs zkc on {os.cpu_count()} cores. EZKL: input {VISIBILITY['input']}, "
            f"params {VISIBILITY['param']}, output {VISIBILITY['output']}; calibrated with target "
            f"\"{CALIBRATION_TARGET}\" on 16 samples; SRS generated locally (ezkl.gen_srs: INSECURE, "
            f"benchmarking only). EZKL's times are the step's own call in a fresh Python process (its "
            f"peak RSS, from /usr/bin/time, includes the interpreter and the ezkl module); zkc's "
            f"are the command's wall time and peak RSS.\n\n")
    if a.md:
        with open(a.md, "w") as f:
            f.write(head + "\n".join(tables))
    print(f"JSON: {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
