# SPDX-License-Identifier: MIT
"""The Markdown tables and gnuplot plots of bench-run.py's results (the medians).

Every ratio is uffsnapd / the baseline of the same run, computed from the medians. For times,
latencies and memory lower is better; for throughput higher is better. Each ratio says which
side won: "better" or "worse" for uffsnapd.
"""
import os
import shutil
import subprocess


def ms(ns):
    return "%.1f" % (ns / 1e6) if ns is not None else "-"


def us(ns):
    return "%.1f" % (ns / 1e3) if ns is not None else "-"


def mib(n, unit=1):
    return "%.0f" % (n * unit / 1048576) if n is not None else "-"


def mib2(n):
    return "%.2f" % (n / 1048576) if n is not None else "-"


def ratio(u, base, lower_better=True, word=True):
    if u is None or not base:
        return "-"
    r = u / base
    if not word:
        return "%.2f" % r
    if abs(r - 1) < 0.05:
        word = "even"
    else:
        word = "better" if (r < 1) == lower_better else "**worse**"
    return "%.2f %s" % (r, word)


def steal(ms_):
    """CPU time the hypervisor took from the machine during a window (results before it: -)."""
    return "%.0f" % ms_ if ms_ is not None else "-"


def thp_label(b):
    return "THP" if b["thp"] else "4K"


def rows(results, name):
    return [b for b in results["benchmarks"] if b["name"] == name]


def table(head, body):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(out) + "\n"


def stop_table(results):
    body = []
    for b in rows(results, "stop"):
        m = b["median"].get
        body.append([
            "%d MiB" % b["size_mib"], thp_label(b), ms(m("quiet.max_gap_ns")),
            "%s / %s" % (ms(m("fork.call_ns")), ms(m("fork.writers.max_gap_ns"))),
            "%s (%s) / %s" % (ms(m("uffsnapd.stats.held_ns")), ms(m("uffsnapd.stats.arm_ns")),
                              ms(m("uffsnapd.writers.max_gap_ns"))),
            "%s / %s" % (ms(m("gcore.writers.max_gap_ns")), ms(m("gcore.wall_ns"))),
            ratio(m("uffsnapd.stats.held_ns"), m("fork.call_ns")),
            ratio(m("uffsnapd.writers.max_gap_ns"), m("fork.writers.max_gap_ns")),
            ratio(m("uffsnapd.writers.max_gap_ns"), m("gcore.writers.max_gap_ns")),
            "%.1f / %.1f" % ((m("fork.child_ns") or 0) / 1e9,
                             (m("uffsnapd.stats.duration_ns") or 0) / 1e9),
            "%s / %s" % (steal(m("fork.writers.steal_ms")),
                         steal(m("uffsnapd.writers.steal_ms"))),
            "-" if m("uffsnapd.stats.fault_sink_waits") is None else "%.0f (%s)" % (
                m("uffsnapd.stats.fault_sink_waits"),
                ms(m("uffsnapd.stats.fault_sink_wait_max_ns")))])
    if not body:
        return ""
    return "### 1. Stop time (ms; lower is better)\n\n" + table(
        ["size", "pages", "no snapshot: writers' gap", "fork(): call / writers' gap",
         "uffsnapd: held (arming) / writers' gap", "gcore: writers' gap / gcore run",
         "held / fork() call", "gap / fork() gap", "gap / gcore gap",
         "fork child / uffsnapd duration (s)",
         "host steal during: fork child / uffsnapd (ms)",
         "uffsnapd: write faults that waited for the disk (longest, ms)"], body)


def stall_table(results):
    body = []
    for b in rows(results, "stall"):
        m = b["median"].get
        for label, k in (("no snapshot", "quiet"), ("fork() (child alive)", "fork.writers"),
                         ("uffsnapd (snapshot running)", "uffsnapd.writers"),
                         ("uffsnapd, image on tmpfs instead of disk", "uffsnapd_tmpfs.writers")):
            if m(k + ".stores_per_s") is None:
                continue  # no tmpfs run in results from before it existed
            after = {"quiet": None, "fork.writers": "fork.after",
                     "uffsnapd.writers": "uffsnapd.after",
                     "uffsnapd_tmpfs.writers": "uffsnapd_tmpfs.after"}[k]
            body.append(["%d MiB %s" % (b["size_mib"], thp_label(b)), label,
                         us(m(k + ".p50_ns")), us(m(k + ".p99_ns")), us(m(k + ".p999_ns")),
                         us(m(k + ".max_ns")), "%.2f" % ((m(k + ".stores_per_s") or 0) / 1e6),
                         "%.2f" % ((m(after + ".stores_per_s") or 0) / 1e6) if after else "-",
                         "%.2f" % ((m(k + ".ns") or 0) / 1e9), steal(m(k + ".steal_ms"))])
        body.append(["", "**ratio uffsnapd / fork()**"] + [
            ratio(m("uffsnapd.writers." + p), m("fork.writers." + p))
            for p in ("p50_ns", "p99_ns", "p999_ns", "max_ns")] + [
            ratio(m("uffsnapd.writers.stores_per_s"), m("fork.writers.stores_per_s"), False),
            ratio(m("uffsnapd.after.stores_per_s"), m("fork.after.stores_per_s"), False), "",
            ""])
    if not body:
        return ""
    return "### 2. Write-fault stall: one writer storing into random pages (µs)\n\n" + table(
        ["target", "during", "p50", "p99", "p99.9", "max", "Mstores/s during",
         "Mstores/s the second after", "window (s)", "host steal (ms)"], body)


def copy_table(results):
    body = []
    for b in rows(results, "copy"):
        m = b["median"].get
        naive = m("naive.gbps")
        body.append(["%d MiB %s" % (b["size_mib"], thp_label(b)), "%.2f" % m("raw.gbps", 0),
                     "%.2f" % naive if naive else "-",
                     "%.2f" % m("file.gbps", 0), ratio(m("file.gbps"), m("raw.gbps"), word=False),
                     ratio(m("file.gbps"), naive, lower_better=False),
                     "%.2f" % m("file2.gbps") if m("file2.gbps") else "-",
                     ratio(m("file2.gbps"), naive, lower_better=False),
                     "%.2f" % m("receiver.gbps", 0),
                     ratio(m("receiver.gbps"), m("raw.gbps"), word=False)])
    if not body:
        return ""
    return ("### 3. Copy throughput (GB/s; higher is better)\n\n"
            "The naive copier reads with process_vm_readv() in 1 MiB chunks and writes each "
            "with write(2) to the same tmpfs: the baseline issue 19 sets (goal: uffsnapd at "
            "least 1.5x it).\n\n" + table(
                ["target (idle)", "process_vm_readv (the ceiling)",
                 "naive copier to tmpfs", "uffsnapd to tmpfs", "fraction of the ceiling",
                 "uffsnapd / naive copier", "uffsnapd, --copy-threads 2",
                 "2 threads / naive copier", "uffsnapd to a receiver on loopback",
                 "fraction of the ceiling"], body))


def mem_table(results):
    body = []
    for b in rows(results, "mem"):
        m = b["median"].get
        fork = m("fork.extra_kib")
        body.append([
            "%d MiB %s" % (b["size_mib"], thp_label(b)),
            "%s (%.0f%%)" % (mib(fork, 1024), 100.0 * (fork or 0) / (b["size_mib"] * 1024)),
            "%s (%s)" % (mib(m("uffsnapd_file.extra_kib"), 1024),
                         mib(m("uffsnapd_file.hwm_kib"), 1024)),
            ratio(m("uffsnapd_file.extra_kib"), fork),
            "%s (%s + %s)" % (mib(m("uffsnapd_stream.extra_kib"), 1024),
                              mib(m("uffsnapd_stream.hwm_kib"), 1024),
                              mib(m("uffsnapd_stream.receiver_hwm_kib"), 1024)),
            ratio(m("uffsnapd_stream.extra_kib"), fork),
            mib(m("uffsnapd_stream.stats.stream.spooled")),
            "%s / %s / %s" % (mib(m("fork.avail_drop_kib"), 1024),
                              mib(m("uffsnapd_file.avail_drop_kib"), 1024),
                              mib(m("uffsnapd_stream.avail_drop_kib"), 1024))])
    if not body:
        return ""
    return ("### 4. Extra memory while the target rewrites all its memory (MiB; lower is "
            "better)\n\n" + table(
                ["target", "fork(): copy-on-write + child page tables (of the size)",
                 "uffsnapd to a file (its VmHWM)", "ratio", "uffsnapd streaming (sender + "
                 "receiver VmHWM)", "ratio", "spooled to disk", "system-wide MemAvailable drop, "
                 "every process on the machine included: fork / file / stream"], body))


def redis_table(results):
    body = []
    for b in rows(results, "redis"):
        m = b["median"].get
        for label, k in (("no snapshot", "baseline"), ("BGSAVE", "bgsave"),
                         ("uffsnapd", "uffsnapd")):
            stop = {"baseline": "-", "bgsave": ms((m("bgsave.fork_usec") or 0) * 1000),
                    "uffsnapd": ms(m("uffsnapd.stats.held_ns"))}[k]
            dur = "%.1f" % ((m(k + ".snapshot_ns") or 0) / 1e9) if k != "baseline" else "-"
            body.append(["%d MiB" % b["size_mib"], label, "%.0f" % m(k + ".rps", 0)] +
                        ["%.2f" % m(k + "." + p, 0) for p in ("p50_ms", "p95_ms", "p99_ms",
                                                              "max_ms")] + [stop, dur])
        body.append(["", "**ratio uffsnapd / BGSAVE**",
                     ratio(m("uffsnapd.rps"), m("bgsave.rps"), False)] +
                    [ratio(m("uffsnapd." + p), m("bgsave." + p)) for p in
                     ("p50_ms", "p95_ms", "p99_ms", "max_ms")] +
                    [ratio(m("uffsnapd.stats.held_ns"), (m("bgsave.fork_usec") or 0) * 1000),
                     ratio(m("uffsnapd.snapshot_ns"), m("bgsave.snapshot_ns"))])
    if not body:
        return ""
    return ("### 5. Redis under redis-benchmark SET load (latency in ms)\n\n" + table(
        ["data", "during", "requests/s", "p50", "p95", "p99", "max",
         "stop (ms): fork() / held", "snapshot (s)"], body))


def size_table(results):
    body = []
    for b in rows(results, "size"):
        m = b["median"].get
        body.append(["synthetic %d MiB %s (1/2 data, 1/4 zeroed, 1/4 untouched)" % (
            b["size_mib"], thp_label(b)), mib(m("resident_bytes")),
            mib(m("nonzero_file_ro_bytes")), mib(m("nonzero_resident_bytes")),
            mib(m("image_bytes")),
            "%.3f" % m("ratio_image_over_nonzero", 0), "-"])
    for b in rows(results, "redis"):
        m = b["median"].get
        nz = m("scan.nonzero_resident_bytes")
        body.append(["redis-server, %d MiB of values" % b["size_mib"],
                     mib(m("scan.resident_bytes")), mib(m("scan.nonzero_file_ro_bytes")),
                     mib(nz), mib(m("uffsnapd.image_bytes")),
                     "%.3f" % ((m("uffsnapd.image_bytes") or 0) / nz if nz else 0),
                     "%s (%.3f)" % (mib(m("bgsave.rdb_bytes")),
                                    (m("bgsave.rdb_bytes") or 0) / nz if nz else 0)])
    if not body:
        return ""
    return "### 6. Image size vs non-zero resident memory (MiB)\n\n" + table(
        ["target", "resident", "non-zero in read-only file mappings (kept by reference)",
         "non-zero resident, the rest", "uffsnapd image", "image / non-zero",
         "BGSAVE's RDB (/ non-zero)"], body)


def precopy_table(results):
    body = []
    for name in ("precopy-2k", "precopy-50k"):
        for b in rows(results, name):
            m = b["median"].get
            body.append([
                "%d MiB" % b["size_mib"], "%d/s" % (m("rate") or 0), ms(m("quiet.max_gap_ns")),
                "%s / %s" % (ms(m("fork.call_ns")), ms(m("fork.writers.max_gap_ns"))),
                "%s / %s" % (ms(m("uffsnapd.stats.held_ns")),
                             ms(m("uffsnapd.writers.max_gap_ns"))),
                "%s / %s" % (ms(m("precopy.stats.precopy.freeze_ns")),
                             ms(m("precopy.writers.max_gap_ns"))),
                "%.0f, %d of %d" % (m("precopy.stats.precopy.rounds") or 0, sum(
                    1 for r in b["runs"] if ((r.get("precopy") or {}).get("stats") or {}).get(
                        "precopy", {}).get("converged")), len(b["runs"])),
                ratio(m("precopy.writers.max_gap_ns"), m("fork.writers.max_gap_ns")),
                ratio(m("precopy.writers.max_gap_ns"), m("uffsnapd.writers.max_gap_ns")),
                ratio(m("precopy.writers.stores_per_s"), m("fork.writers.stores_per_s"),
                      lower_better=False),
                "%.1f / %.1f / %.1f" % ((m("fork.child_ns") or 0) / 1e9,
                                        (m("uffsnapd.stats.duration_ns") or 0) / 1e9,
                                        (m("precopy.stats.duration_ns") or 0) / 1e9)])
    if not body:
        return ""
    return "### Pre-copy (ms; lower is better)\n\n" + table(
        ["size", "writer's stores", "no snapshot: gap", "fork(): call / gap",
         "uffsnapd: held / gap", "--precopy: final hold / gap", "rounds, converged",
         "pre-copy gap / fork() gap", "pre-copy gap / uffsnapd gap",
         "stores/s: pre-copy / fork()", "duration (s): fork child / uffsnapd / pre-copy"],
        body)


def chain_table(results):
    body = []
    for b in rows(results, "chain"):
        m = b["median"].get
        full = m("full.file_bytes") or 0
        for frac in ("0.1", "1", "10", "50"):
            k = "inc_%spct." % frac
            if m(k + "dirtied_bytes") is None:
                continue
            raced = sum(1 for r in b["runs"] if r.get("inc_%spct" % frac, {}).get("raced"))
            body.append([
                "%d MiB" % b["size_mib"], "%s%%" % frac, mib2(m(k + "dirtied_bytes")),
                mib2(m(k + "file_bytes")), "%.3f" % m(k + "file_per_dirtied", 0),
                "%.4f" % ((m(k + "file_bytes") or 0) / full if full else 0),
                ms(m(k + "held_ns")), "%s (%s)" % (mib(full), ms(m("full.held_ns"))),
                "%d of %d" % (raced, len(b["runs"]))])
    if not body:
        return ""
    return ("### Incremental chains (MiB; held in ms)\n\n" + table(
        ["size", "pages dirtied between two images", "bytes dirtied", "increment",
         "increment / dirtied", "increment / full image", "held", "full image (held)",
         "runs raced (left out)"], body))


def core_table(results):
    body = []
    for b in rows(results, "core"):
        m = b["median"].get
        body.append([
            "%d MiB" % b["size_mib"], thp_label(b),
            "%s / %s" % (ms(m("gcore.writers.max_gap_ns")), ms(m("gcore.wall_ns"))),
            "%s / %s / %s" % (ms(m("uffsnapd_core.stats.held_ns")),
                              ms(m("uffsnapd_core.writers.max_gap_ns")),
                              ms(m("uffsnapd_core.wall_ns"))),
            ratio(m("uffsnapd_core.writers.max_gap_ns"), m("gcore.writers.max_gap_ns")),
            ratio(m("uffsnapd_core.wall_ns"), m("gcore.wall_ns")),
            "%s / %s" % (ms(m("uffsnapd_core.quiet.max_gap_ns")),
                         ms(m("gcore.quiet.max_gap_ns"))),
            "%s / %s" % (steal(m("gcore.writers.steal_ms")),
                         steal(m("uffsnapd_core.writers.steal_ms")))])
    if not body:
        return ""
    return ("### Core files: `uffsnapd --core` beside gcore (ms)\n\n"
            "How long the program cannot run while its ELF core is written: gcore stops it "
            "for the whole dump; uffsnapd holds it briefly and copies in the background "
            "(the writers' longest gap is what the program feels). The whole run of "
            "`uffsnapd --core` writes the memory twice (its image, then the core).\n\n" + table(
                ["size", "pages", "gcore: writers' gap / whole run",
                 "uffsnapd --core: held / writers' gap / whole run", "gap / gcore gap",
                 "whole run / gcore's", "quiet gap before (uffsnapd / gcore run)",
                 "steal ms (gcore / uffsnapd)"], body))


def threads_table(results):
    body = []
    for b in rows(results, "threads"):
        m = b["median"].get
        body.append([
            "%d MiB" % b["size_mib"], thp_label(b), "%d / %.0f / %.0f" % (
                b["threads"], m("threads") or 0, m("uffsnapd.stats.threads") or 0),
            ms(m("quiet.max_gap_ns")), ms(m("fork.call_ns")),
            "%s (%s / %s; %s)" % (ms(m("uffsnapd.stats.held_ns")),
                                  ms(m("uffsnapd.stats.hold_first_ns")),
                                  ms(m("uffsnapd.stats.hold_final_ns")),
                                  ms(m("uffsnapd.stats.attach_ns"))),
            ratio(m("uffsnapd.stats.held_ns"), m("fork.call_ns")),
            "%s / %s" % (ms(m("fork.writers.max_gap_ns")), ms(m("uffsnapd.writers.max_gap_ns"))),
            ratio(m("uffsnapd.writers.max_gap_ns"), m("fork.writers.max_gap_ns")),
            "%s / %s" % (ms(m("fork.child_ns")), ms(m("uffsnapd.wall_ns"))),
            "%s / %s" % (steal(m("fork.writers.steal_ms")),
                         steal(m("uffsnapd.writers.steal_ms")))])
    if not body:
        return ""
    return ("### Threads: uffsnapd's hold against the fork() call as threads grow (ms)\n\n"
            "Idle threads (waiting on a condition variable) bring the process to the thread "
            "count asked; the main thread and one writer are the fewest it has. fork() copies "
            "the address space whatever the threads; each hold of uffsnapd stops every thread. "
            "The goal (issue 19): hold <= fork() call at every count.\n\n" + table(
                ["size", "pages", "threads: asked / in the process / held by uffsnapd",
                 "no snapshot: writer's gap", "fork() call",
                 "uffsnapd hold: longest (first / final; attach)", "hold / fork() call",
                 "writer's gap: fork() / uffsnapd", "gap / fork() gap",
                 "whole run: fork() child / uffsnapd",
                 "host steal during: fork child / uffsnapd (ms)"], body))


def bound_keys(b):
    """The bounds of a "bound" run, smallest first: (member name, MiB)."""
    keys = {k.split(".")[0] for k in b["median"] if k.startswith("b") and
            k.split(".")[0][1:].isdigit()}
    return sorted(((k, int(k[1:])) for k in keys), key=lambda kv: kv[1])


def bound_table(results):
    body = []
    for b in rows(results, "bound"):
        m = b["median"].get
        for k, mb in bound_keys(b):
            body.append([
                "%d MiB" % b["size_mib"], thp_label(b), "%d MiB" % mb,
                mib(m(k + ".hwm_kib"), 1024),
                "%s / %s" % (ms(m("fork.writers.max_gap_ns")), ms(m(k + ".writers.max_gap_ns"))),
                ratio(m(k + ".writers.max_gap_ns"), m("fork.writers.max_gap_ns")),
                "%.0f (%s)" % (m(k + ".stats.fault_sink_waits") or 0,
                               ms(m(k + ".stats.fault_sink_wait_max_ns"))),
                "%s / %s" % (us(m("fork.writers.p999_ns")), us(m(k + ".writers.p999_ns"))),
                "%.0f / %.0f" % ((m("fork.writers.stores_per_s") or 0) / 1e3,
                                 (m(k + ".writers.stores_per_s") or 0) / 1e3),
                ratio(m(k + ".writers.stores_per_s"), m("fork.writers.stores_per_s"), False),
                "%s / %s" % (ms(m("fork.wall_ns")), ms(m(k + ".wall_ns")))])
    if not body:
        return ""
    rate = rows(results, "bound")[0]["median"].get("rate_mbps") or 0
    return ("### Memory against stalls when the output is slow (ms)\n\n"
            "The image goes into a reader of %.0f MB/s; one writer stores into random pages as "
            "fast as it can. uffsnapd runs with each `--mem-limit`: copies of written pages "
            "queue up to it, then a write waits for the output. fork()'s child writes into the "
            "same reader; its parent never waits for it.\n\n" % rate + table(
                ["size", "pages", "--mem-limit", "uffsnapd peak memory (MiB)",
                 "writer's longest gap: fork() / uffsnapd", "gap / fork() gap",
                 "write faults that waited (longest ms)",
                 "writer's p99.9 store (µs): fork() / uffsnapd",
                 "writer's kstores/s: fork() / uffsnapd", "stores/s / fork()",
                 "whole run: fork() child / uffsnapd"], body))


def markdown(results):
    head = ("## uffsnap benchmarks, %s\n\n%s, kernel %s, %d CPUs; medians of %d run(s)%s. "
            "Ratios are uffsnapd / the baseline measured in the same run: \"better\" or "
            "\"**worse**\" says which side won (within 5%%: \"even\").\n\n" % (
                results["date"], results["host"], results["kernel"], results["cpus"],
                results["reps"], " (--quick: small sizes, not for publishing)"
                if results["quick"] else ""))
    tables = (stop_table, stall_table, copy_table, mem_table, redis_table, size_table,
              precopy_table, chain_table, core_table, threads_table, bound_table)
    parts = [head] + [t for t in (f(results) for f in tables) if t]
    if results["skipped"]:
        parts.append("### Skipped\n\n" + "".join(
            "- %s %d MiB %s%s: %s\n" % (
                s["name"], s["size_mib"], "THP" if s["thp"] else "4K",
                ", %d threads" % s["threads"] if s.get("threads") else "", s["why"])
            for s in results["skipped"]))
    return "\n".join(parts)


def bars(path, title, ylabel, series, groups, logscale=False):
    """Clustered bars: groups = [(x label, [value per series])]."""
    dat = path[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write("x " + " ".join('"%s"' % s for s in series) + "\n")
        for label, vals in groups:
            f.write('"%s" ' % label + " ".join("%g" % (v or 0) for v in vals) + "\n")
    gp = ["set terminal pngcairo size 1000,520 font ',10' noenhanced", "set output '%s'" % path,
          "set title '%s'" % title.replace("'", "''"), "set ylabel '%s'" % ylabel,
          "set style data histograms", "set style histogram clustered gap 1",
          "set style fill solid 0.8 border -1", "set key outside right top",
          "set grid ytics", "set xtics nomirror", "set yrange [%s:*]" % ("*" if logscale
                                                                        else "0")]
    if logscale:
        gp.append("set logscale y")
    if len(groups) > 4:
        gp.append("set xtics rotate by -30")
    gp.append("plot " + ", ".join("'%s' using %d:xtic(1) title columnhead(%d)" % (dat, i + 2,
                                                                                 i + 2)
                                  for i in range(len(series))))
    subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", text=True, check=True)
    os.unlink(dat)
    return os.path.basename(path)


def plots(results, outdir):
    if not shutil.which("gnuplot"):
        print("bench-run: no plots: gnuplot is not installed (apt-get install gnuplot-nox)")
        return []
    made = []
    g = lambda b, k: b["median"].get(k)  # noqa: E731
    lab = lambda b: "%d MiB %s" % (b["size_mib"], thp_label(b))  # noqa: E731
    stop = rows(results, "stop")
    if stop:
        made.append(bars(os.path.join(outdir, "stop.png"),
                         "1. Stop time: how long the target's threads cannot run", "ms (log)",
                         ["fork() call", "fork() writers' gap", "uffsnapd held",
                          "uffsnapd writers' gap", "gcore writers' gap", "no snapshot gap"],
                         [(lab(b), [(g(b, k) or 0) / 1e6 for k in (
                             "fork.call_ns", "fork.writers.max_gap_ns", "uffsnapd.stats.held_ns",
                             "uffsnapd.writers.max_gap_ns", "gcore.writers.max_gap_ns",
                             "quiet.max_gap_ns")]) for b in stop], True))
    stall = rows(results, "stall")
    if stall:
        groups = []
        for b in stall:
            for p, pl in (("p50_ns", "p50"), ("p99_ns", "p99"), ("p999_ns", "p99.9"),
                          ("max_ns", "max")):
                groups.append(("%s %s" % (lab(b), pl), [(g(b, k + "." + p) or 0) / 1e3 for k in (
                    "quiet", "fork.writers", "uffsnapd.writers", "uffsnapd_tmpfs.writers")]))
        made.append(bars(os.path.join(outdir, "stall.png"),
                         "2. Per-store latency while a snapshot runs", "µs (log)",
                         ["no snapshot", "while the fork() child lives",
                          "while uffsnapd runs", "uffsnapd, image on tmpfs"], groups, True))
    copy = rows(results, "copy")
    if copy:
        made.append(bars(os.path.join(outdir, "copy.png"), "3. Copy throughput", "GB/s",
                         ["process_vm_readv", "naive copier to tmpfs", "uffsnapd to tmpfs",
                          "uffsnapd, 2 copy threads", "uffsnapd to receiver"],
                         [(lab(b), [g(b, "raw.gbps"), g(b, "naive.gbps"), g(b, "file.gbps"),
                                    g(b, "file2.gbps"), g(b, "receiver.gbps")])
                          for b in copy]))
    mem = rows(results, "mem")
    if mem:
        made.append(bars(os.path.join(outdir, "mem.png"),
                         "4. Extra memory while the target rewrites all of it", "MiB",
                         ["fork() copy-on-write", "uffsnapd to file", "uffsnapd streaming"],
                         [(lab(b), [(g(b, k) or 0) / 1024 for k in (
                             "fork.extra_kib", "uffsnapd_file.extra_kib",
                             "uffsnapd_stream.extra_kib")]) for b in mem]))
    redis = rows(results, "redis")
    if redis:
        groups = []
        for b in redis:
            for p in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
                groups.append(("%d MiB %s" % (b["size_mib"], p[:-3]), [
                    g(b, k + "." + p) for k in ("baseline", "bgsave", "uffsnapd")]))
        made.append(bars(os.path.join(outdir, "redis.png"),
                         "5. Redis SET latency during a snapshot", "ms (log)",
                         ["no snapshot", "BGSAVE", "uffsnapd"], groups, True))
    size = rows(results, "size")
    if size or redis:
        groups = [(lab(b), [g(b, "nonzero_resident_bytes"), g(b, "image_bytes")]) for b in size]
        groups += [("redis %d MiB" % b["size_mib"], [g(b, "scan.nonzero_resident_bytes"),
                                                     g(b, "uffsnapd.image_bytes")])
                   for b in redis]
        groups = [(x, [(v or 0) / 1048576 for v in vals]) for x, vals in groups]
        made.append(bars(os.path.join(outdir, "size.png"), "6. Image size", "MiB",
                         ["non-zero resident", "uffsnapd image"], groups))
    for b in rows(results, "bound"):
        made.append(bound_plot(b, os.path.join(outdir, "bound.png")))
    return made


def bound_plot(b, path):
    """Longest gap (left axis) and peak memory (right) against --mem-limit."""
    g = b["median"].get
    dat = path[:-4] + ".dat"
    with open(dat, "w") as f:
        for k, mb in bound_keys(b):
            f.write("%d %g %g %g %g\n" % (mb, (g(k + ".writers.max_gap_ns") or 0) / 1e6,
                                          (g(k + ".hwm_kib") or 0) / 1024,
                                          (g("fork.writers.max_gap_ns") or 0) / 1e6,
                                          (g(k + ".stats.fault_sink_wait_max_ns") or 0) / 1e6))
    gp = ["set terminal pngcairo size 1000,520 font ',10' noenhanced", "set output '%s'" % path,
          "set title '7. Memory against stalls: %d MiB, image into a %.0f MB/s reader'" % (
              b["size_mib"], g("rate_mbps") or 0),
          "set xlabel '--mem-limit (MiB, log)'", "set logscale x 2",
          "set ylabel 'ms'", "set y2label 'uffsnapd peak memory (MiB)'",
          "set ytics nomirror", "set y2tics", "set yrange [0:*]", "set y2range [0:*]",
          "set grid", "set key below",
          "plot '%s' using 1:2 with linespoints lw 2 title 'uffsnapd: longest gap', "
          "'%s' using 1:5 with linespoints title 'uffsnapd: longest write fault waiting for the "
          "output', '%s' using 1:4 with lines dt 2 title 'fork(): longest gap', "
          "'%s' using 1:3 axes x1y2 with linespoints title 'uffsnapd: peak memory'" % (
              dat, dat, dat, dat)]
    subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", text=True, check=True)
    os.unlink(dat)
    return os.path.basename(path)
