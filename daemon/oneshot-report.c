/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "oneshot-report.h"
#include "stream/sink.h"

/* What every pre-copy round copied together. */
static uint64_t rounds_bytes(const struct snap_stats *st)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < st->rounds && i < SNAP_MAX_ROUNDS; i++)
		total += st->round[i].bytes;
	return total;
}

static void print_precopy(FILE *f, const struct snap_stats *st)
{
	uint64_t total = rounds_bytes(st);

	fprintf(f,
		"  target held        %.3f ms at the instant (predicted %.3f; %.1f MiB copied), "
		"%.3f ms at the start (attach %.3f); %u threads\n"
		"  pre-copy           %u rounds, %s; %.1f MiB copied in all; target writing %.1f "
		"MiB/s at the end\n",
		st->hold_final_ns / 1e6, st->downtime_predicted_ns / 1e6,
		st->freeze_bytes / 1048576.0, st->hold_first_ns / 1e6, st->attach_ns / 1e6,
		st->threads, st->rounds,
		st->converged	? "converged"
		: st->fell_back ? "did NOT converge"
				: "did not fit the budget, but what was left to copy was small: the "
				  "hold was mostly attaching",
		total / 1048576.0, st->dirty_rate_bps / 1048576.0);
	if (st->fell_back)
		fprintf(f,
			"  fell back          to write protection for the last %.1f MiB: saved "
			"after the instant, a write to one of them waited for it\n",
			st->fell_back_bytes / 1048576.0);
	fprintf(f, "  rounds (MiB)      ");
	for (unsigned i = 0; i < st->rounds && i < SNAP_MAX_ROUNDS; i++)
		fprintf(f, " %.1f", st->round[i].bytes / 1048576.0);
	fputc('\n', f);
}

static void print_holds(FILE *f, const struct snap_stats *st)
{
	if (st->rounds)
		print_precopy(f, st);
	else if (st->hold_first_ns) /* armed while the target ran */
		fprintf(f,
			"  target held        %.3f ms at most: first hold %.3f (attach %.3f), final "
			"hold %.3f (re-arming %.3f, %" PRIu64 " ranges; copying %.3f); arming while "
			"it ran %.3f ms; %u threads\n",
			st->held_ns / 1e6, st->hold_first_ns / 1e6, st->attach_ns / 1e6,
			st->hold_final_ns / 1e6, st->rearm_ns / 1e6, st->rearm_ranges,
			st->copy_held_ns / 1e6, st->arm_ns / 1e6, st->threads);
	else
		fprintf(f,
			"  target held        %.3f ms (attach %.3f, arming %.3f, copying %.3f), "
			"%u threads\n",
			st->held_ns / 1e6, st->attach_ns / 1e6, st->arm_ns / 1e6,
			st->copy_held_ns / 1e6, st->threads);
}

/* Writes write protection cannot see: the image names each in an EVENT "may-not-be-exact". */
static void print_unseen(FILE *f, const struct snap_stats *st)
{
	if (!st->io_contexts && !st->io_rings_hidden && !st->shared_writers && !st->fd_writers)
		return;
	fprintf(f,
		"  may not be exact   %" PRIu64 " io_uring/AIO contexts (O_DIRECT reads may be in "
		"flight), %" PRIu64 " rings that cannot be inspected,\n"
		"                     %" PRIu64 " writable mappings of its shared memory by others, "
		"%" PRIu64 " writable descriptors\n"
		"                     to shared memory that changed (the image's EVENTs say where)\n",
		st->io_contexts, st->io_rings_hidden, st->shared_writers, st->fd_writers);
}

static void print_migration(FILE *f, const struct oneshot_report *c, const struct snap_stats *st)
{
	const struct migrate_stats *m = c->migration;
	uint64_t total = rounds_bytes(st);

	fprintf(
	    f,
	    "uffsnapd: the guest (pid %d, QEMU %s, %s, %.1f MiB RAM) migrated to %s (QEMU at "
	    "%s)\n"
	    "  source stopped     %.3f ms until its migration completed (QEMU says %" PRId64
	    " ms);\n"
	    "                     of which the last round %.3f ms (%.1f MiB), the device state "
	    "%.3f ms;\n"
	    "                     the receiver reports the downtime to the guest running there\n"
	    "  pre-copy           %u rounds, %s; %.1f MiB copied in all, guest writing %.1f "
	    "MiB/s at the end\n",
	    m->guest.pid, m->guest.qemu_version, m->guest.machine, m->guest.ram_bytes / 1048576.0,
	    c->where, m->uri, (m->done_realtime_ns - m->stop_realtime_ns) / 1e6,
	    m->qemu_downtime_ms, m->final_ns / 1e6, st->freeze_bytes / 1048576.0,
	    m->switchover_ns / 1e6, st->rounds,
	    st->converged ? "converged"
			  : "did NOT converge (the rest was copied "
			    "while the guest was stopped)",
	    total / 1048576.0, st->dirty_rate_bps / 1048576.0);
}

static void print_summary(FILE *f, const struct oneshot_report *c, const struct snap_stats *st)
{
	const struct guest_stats *g = c->guest;

	if (c->migration) {
		print_migration(f, c, st);
		return;
	}
	if (g)
		fprintf(f,
			"uffsnapd: snapshot of the QEMU guest (pid %d, QEMU %s, %s) complete: %s\n"
			"  guest downtime     %.3f ms (stop to cont), of which device state %.3f ms "
			"(%" PRIu64 " bytes)\n"
			"  guest RAM          %.1f MiB in %u backend%s\n",
			c->pid, g->qemu_version, g->machine, c->where,
			g->downtime_ns / 1e6, g->devstate_ns / 1e6, g->devstate_bytes,
			g->ram_bytes / 1048576.0, g->backends, g->backends == 1 ? "" : "s");
	else
		fprintf(f, "uffsnapd: snapshot of pid %d complete: %s\n", c->pid, c->where);
	print_holds(f, st);
	fprintf(f,
		"  pages saved        %" PRIu64 " by the copier, %" PRIu64 " by write faults, %" PRIu64
		" while held\n"
		"  zero pages         %" PRIu64 "\n"
		"  discarded after T  %" PRIu64 "\n"
		"  write faults       %" PRIu64 ", service time p50 %.1f us, p99 %.1f us, max %.1f us\n"
		"  image              %" PRIu64 " bytes (%.1f MiB), duration %.3f s\n",
		st->pages_copier, st->pages_fault, st->pages_held, st->pages_zero,
		st->pages_discarded, st->faults, st->fault_p50_ns / 1e3, st->fault_p99_ns / 1e3,
		st->fault_max_ns / 1e3, st->bytes, st->bytes / 1048576.0, st->duration_ns / 1e9);
	if (st->pinned_bytes_held || st->pinned_bytes_not_exact)
		fprintf(f,
			"  pinned buffers     %.1f KiB io_uring registered buffers copied while held, "
			"%.1f KiB not exact (recorded as discarded)\n",
			st->pinned_bytes_held / 1024.0, st->pinned_bytes_not_exact / 1024.0);
	print_unseen(f, st);
	if (st->fault_sink_waits)
		fprintf(f,
			"  sink too slow      %" PRIu64 " write faults waited for the image to be "
			"written (longest %.1f ms):\n"
			"                     the target waited for the output; write it somewhere "
			"faster (tmpfs, --to),\n"
			"                     or let more wait in memory (--mem-limit)\n",
			st->fault_sink_waits, st->fault_sink_wait_max_ns / 1e6);
}

static json_t *stream_json(const struct stream_counters *sc)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "accepted",
			 (json_int_t)sc->accepted, "sent", (json_int_t)sc->sent, "resent",
			 (json_int_t)sc->resent, "acked", (json_int_t)sc->acked, "spooled",
			 (json_int_t)sc->spooled, "mem_used", (json_int_t)sc->mem_used, "mem_peak",
			 (json_int_t)sc->mem_peak, "reconnects", (json_int_t)sc->reconnects,
			 "elapsed_ns", (json_int_t)sc->elapsed_ns, "complete", sc->complete);
}

static void print_stream_summary(FILE *f, const struct stream_counters *sc)
{
	double s = sc->elapsed_ns / 1e9;

	fprintf(f,
		"  stream             %.1f MiB sent (%.1f MiB again after %" PRIu64
		" reconnects), %.1f MiB/s; peak %.1f MiB in memory, %.1f MiB spooled\n",
		sc->sent / 1048576.0, sc->resent / 1048576.0, sc->reconnects,
		s > 0 ? sc->sent / 1048576.0 / s : 0, sc->mem_peak / 1048576.0,
		sc->spooled / 1048576.0);
}

void oneshot_report(const struct oneshot_report *c, const struct snap_stats *st, int r,
		    const char *msg)
{
	FILE *f = c->to_stdout ? stderr : stdout;
	struct stream_counters sc = {0};

	if (c->stream)
		stream_sink_counters(c->stream, &sc);
	if (c->json) {
		json_t *j = NULL;

		if (snapshot_stats_to_json(st, &j) >= 0) {
			json_object_set_new(j, "pid", json_integer(c->pid));
			if (c->guest)
				json_object_set_new(j, "guest", guest_stats_json(c->guest));
			if (c->migration)
				json_object_set_new(j, "migration",
						    migrate_stats_json(c->migration));
			json_object_set_new(j, "output", json_string(c->where));
			if (c->stream)
				json_object_set_new(j, "stream", stream_json(&sc));
			json_object_set_new(j, "ok", json_boolean(r >= 0));
			if (r < 0)
				json_object_set_new(j, "error", json_string(msg));
			json_dumpf(j, f, JSON_COMPACT);
			fputc('\n', f);
			json_decref(j);
		}
	} else if (r >= 0 && !c->quiet) {
		print_summary(f, c, st);
		if (c->stream)
			print_stream_summary(f, &sc);
	}
}
