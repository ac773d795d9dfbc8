#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs every uffsnap benchmark (tests/bench/README.md), each a program printing one JSON
object, repeats it, and writes into the build directory:
  results.json  every run's JSON, the median of each figure, and what was skipped and why
  results.md    the tables: each figure beside its baseline from the same run, and the ratio
  *.png         gnuplot plots of the same medians

usage: bench-run.py BUILD_DIR [--quick] [--reps N] [--only NAME[,NAME]]
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_report  # noqa: E402

GIB = 1024

# name -> (sizes in MiB, THP settings, MiB of free memory needed for a size[, thread counts])
FULL = {
    "stop": ([1 * GIB, 4 * GIB, 8 * GIB], [False, True], lambda s: 2 * s + 1024),
    "stall": ([2 * GIB], [False, True], lambda s: 3 * s + 1024),  # + a tmpfs image
    "copy": ([2 * GIB], [False, True], lambda s: 2 * s + 1024),
    "mem": ([2 * GIB], [False, True], lambda s: 2 * s + 1024),
    "size": ([1 * GIB], [False, True], lambda s: s + 512),
    "redis": ([3 * GIB], [False], lambda s: 3 * s + 1024),
    # pre-copy against fork() and the write-protect snapshot, at two dirty rates (stores/s of
    # one writer into random pages: 8 MB/s and 200 MB/s of new dirty pages at most)
    "precopy-2k": ([1 * GIB, 4 * GIB, 8 * GIB], [False], lambda s: 2 * s + 1024),
    "precopy-50k": ([1 * GIB, 4 * GIB, 8 * GIB], [False], lambda s: 2 * s + 1024),
    # incremental chains: each increment against the pages dirtied since the image before
    "chain": ([1 * GIB], [False], lambda s: 2 * s + 1024),
    # uffsnapd --core beside gcore (issue 15): how long each stops the program. The process is
    # the target (no fork()); its cores go to disk: a temporary image and the core, 2 x size.
    "core": ([1 * GIB, 2 * GIB, 4 * GIB, 8 * GIB], [False], lambda s: s + 1024),
    # uffsnapd's hold against the fork() call as the target's threads grow (issue 19): idle
    # threads make the process 1 (in fact 2: the main thread and a writer), 64 and 512 threads
    "threads": ([1 * GIB], [False, True], lambda s: 2 * s + 1024, [1, 64, 512]),
    # memory against stalls (issue 19): the image into a reader of BOUND_RATE MB/s, slower
    # than the writer dirties, at each --mem-limit of BOUNDS (MiB), beside fork()
    "bound": ([1 * GIB], [False], lambda s: 3 * s + 1024),
}
BOUND_RATE = "100"
BOUNDS = "8,32,128,512,2048"
QUICK_SIZE = 256


def mem_available_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


class Runner:
    def __init__(self, build, quick):
        self.build = os.path.abspath(build)
        self.bin = os.path.join(self.build, "tests", "bench")
        self.uffsnapd = os.path.join(self.build, "daemon", "uffsnapd")
        self.work = os.path.join(self.build, "bench-work")  # on disk: images of big targets
        self.shm = "/dev/shm/uffsnap-bench-%d" % os.getpid()  # tmpfs: copy throughput only
        self.logs = os.path.join(self.build, "bench-logs")
        self.quick = quick
        for d in (self.work, self.shm, self.logs, os.path.join(self.work, "rx"),
                  os.path.join(self.shm, "rx")):
            os.makedirs(d, exist_ok=True)
        self.key = os.path.join(self.work, "key")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        os.chmod(self.key, 0o600)
        self.proc = None

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.shm, ignore_errors=True)
        for name in os.listdir(self.work):
            path = os.path.join(self.work, name)
            if name.startswith("bench-") or name.endswith(".img"):
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)

    def argv(self, name, size, thp, threads):
        t = "thp" if thp else "nothp"
        port = str(random.randint(40000, 59999))
        b = lambda p: os.path.join(self.bin, p)  # noqa: E731
        if name == "stop":
            return [b("bench-stop"), self.uffsnapd, str(size), t, self.work, "2"]
        if name == "threads":  # one writer: the other CPU is left to uffsnapd, as in stall
            return [b("bench-stop"), "--threads", str(threads), self.uffsnapd, str(size), t,
                    self.work, "1", "nogcore"]
        if name == "stall":
            return [b("bench-stop"), self.uffsnapd, str(size), t, self.work, "1", "nogcore",
                    self.shm]
        if name == "copy":
            return [b("bench-copy"), self.uffsnapd, str(size), t, self.shm, self.key, port,
                    os.path.join(self.shm, "rx")]
        if name == "mem":
            return [b("bench-mem"), self.uffsnapd, str(size), t, self.work, self.key, port,
                    os.path.join(self.work, "rx")]
        if name == "size":
            return [b("bench-size"), self.uffsnapd, str(size), t, self.work]
        if name.startswith("precopy-"):
            rate = name.split("-")[1].replace("k", "000")
            return [b("bench-precopy"), self.uffsnapd, str(size), t, self.work, rate]
        if name == "chain":  # seconds between images: well above the full image's time
            return [b("bench-chain"), self.uffsnapd, str(size), self.work,
                    "4" if self.quick else "15"]
        if name == "core":
            return [b("bench-core"), self.uffsnapd, str(size), t, self.work]
        if name == "bound":
            return [b("bench-bound"), self.uffsnapd, str(size), t, self.work, BOUND_RATE,
                    BOUNDS]
        if name == "redis":
            return [os.path.join(HERE, "bench-redis.sh"), self.uffsnapd, b("bench-size"),
                    str(size), self.work, port]
        raise ValueError(name)

    def run(self, name, size, thp, threads, rep):
        """One run: its JSON object, or a string saying why there is none."""
        argv = self.argv(name, size, thp, threads)
        log = os.path.join(self.logs, "%s-%d-%s%s-%d.log" % (
            name, size, "thp" if thp else "nothp", "-%dt" % threads if threads else "", rep))
        with open(log, "w") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                         start_new_session=True)
            try:
                out, _ = self.proc.communicate(timeout=3600)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                return "timed out after an hour (log: %s)" % log
        rc = self.proc.returncode
        self.cleanup_between()
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    break
        return "exit %d and no JSON (log: %s)" % (rc, log)

    def cleanup_between(self):
        for d in (self.shm, os.path.join(self.shm, "rx"), os.path.join(self.work, "rx")):
            for name in os.listdir(d):
                path = os.path.join(d, name)
                if os.path.isfile(path):
                    os.unlink(path)


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def median_of(runs):
    flat = [flatten(r) for r in runs]
    keys = set().union(*flat)
    return {k: statistics.median([f[k] for f in flat if k in f]) for k in sorted(keys)}


def plan(args):
    names = list(FULL)
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    for name in names:
        sizes, thps, need, *more = FULL[name]
        if args.quick:
            sizes = [QUICK_SIZE]
        for size in sizes:
            for thp in thps:
                for threads in (more[0] if more else [None]):
                    yield name, size, thp, threads, need(size)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true", help="1 repetition, %d MiB" % QUICK_SIZE)
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--only", help="comma-separated: " + ",".join(FULL))
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    if os.geteuid() != 0:
        sys.exit("bench-run: run as root (uffsnapd and gcore need CAP_SYS_PTRACE)")
    runner = Runner(args.build, args.quick)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": os.uname().nodename,
               "kernel": os.uname().release, "cpus": os.cpu_count(), "quick": args.quick,
               "reps": reps, "benchmarks": [], "skipped": []}
    t_start = time.time()
    try:
        for name, size, thp, threads, need in plan(args):
            runs, label = [], "%s %d MiB %s" % (name, size, "THP" if thp else "4 KiB pages")
            # A config of a benchmark with a thread axis says its thread count (the others
            # do not, so that their results read as before).
            config = {"name": name, "size_mib": size, "thp": thp}
            if threads:
                config["threads"] = threads
                label += ", %d threads" % threads
            for rep in range(reps):
                avail = mem_available_mib()
                if avail < need:
                    why = "needs %d MiB free, MemAvailable is %d MiB" % (need, avail)
                    print("bench-run: skip %s: %s" % (label, why), flush=True)
                    results["skipped"].append(dict(config, why=why))
                    break
                t0 = time.time()
                r = runner.run(name, size, thp, threads, rep)
                print("bench-run: %s, run %d/%d: %s (%.0f s)" % (
                    label, rep + 1, reps, "ok" if isinstance(r, dict) else r,
                    time.time() - t0), flush=True)
                if isinstance(r, dict):
                    runs.append(r)
                else:
                    results["skipped"].append(dict(config, why=r))
            if runs:
                results["benchmarks"].append(dict(config, runs=runs, median=median_of(runs)))
    finally:
        runner.cleanup()
    results["seconds"] = round(time.time() - t_start)
    with open(os.path.join(runner.build, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = bench_report.markdown(results)
    with open(os.path.join(runner.build, "results.md"), "w") as f:
        f.write(md)
    pngs = bench_report.plots(results, runner.build)
    print(md)
    print("bench-run: %s/results.json, results.md%s (%d s)" % (
        runner.build, ", " + ", ".join(pngs) if pngs else "", results["seconds"]))


if __name__ == "__main__":
    main()
