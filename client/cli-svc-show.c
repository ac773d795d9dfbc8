/* SPDX-License-Identifier: MIT */
/* Human-readable jobs, events and statistics for uffsnapctl's service commands. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli-meta.h"
#include "cli-svc-show.h"

/* Width of the progress bar, in characters. */
#define CLI_PROGRESS_BAR 30
/* Without a terminal, a progress line every this many percent. */
#define CLI_PROGRESS_STEP 10

static uint64_t cli_u64(const json_t *obj, const char *key)
{
	uint64_t v = 0;

	cli_json_u64(obj, key, &v);
	return v;
}

const char *cli_svc_time(const json_t *ts, char *buf, size_t len)
{
	uint64_t sec;
	time_t t;
	struct tm tm;

	buf[0] = 0;
	if (cli_json_u64(ts, "seconds", &sec) < 0)
		return buf;
	t = (time_t)sec;
	if (localtime_r(&t, &tm))
		strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

const char *cli_svc_output(const json_t *output, char *buf, size_t len)
{
	const char *file = cli_json_str(output, "file");
	char *text;

	if (file) {
		snprintf(buf, len, "file %s (in the snapshot directory)", file);
	} else if (cli_json_str(output, "to")) {
		snprintf(buf, len, "the receiver at %s", cli_json_str(output, "to"));
	} else if (json_object_get(output, "fd")) {
		snprintf(buf, len, "a file the client passed");
	} else {
		text = output ? json_dumps(output, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		snprintf(buf, len, "%s", text ? text : "-");
		free(text);
	}
	return buf;
}

static int cli_percent(uint64_t done, uint64_t total)
{
	if (!total)
		return 0;
	return done >= total ? 100 : (int)(done * 100 / total);
}

static void cli_show_error_member(const char *label, const json_t *err)
{
	const char *class = cli_json_str(err, "class"), *desc = cli_json_str(err, "desc");

	if (class || desc)
		printf("%-10s%s%s%s%s\n", label, desc ? desc : "", class ? " (" : "",
		       class ? class : "", class ? ")" : "");
}

static void cli_show_forks(const json_t *forks)
{
	if (!json_array_size(forks))
		return;
	printf("%-10s", "forks:");
	for (size_t i = 0; i < json_array_size(forks); i++)
		printf(" %" JSON_INTEGER_FORMAT, json_integer_value(json_array_get(forks, i)));
	printf("\n");
}

static bool cli_is_receive(const json_t *job)
{
	const char *type = cli_json_str(job, "type");

	return type && !strcmp(type, "receive");
}

/* A snapshot job's stream to a receiver ("stream" in CONTROL.md). */
static void cli_show_stream(const json_t *st)
{
	if (!json_is_object(st))
		return;
	printf("%-10s%.1f MiB sent, %.1f MiB acknowledged (%.1f MiB again after %" PRIu64
	       " reconnects), peak %.1f MiB in memory, %.1f MiB spooled%s\n",
	       "stream:", cli_u64(st, "sent") / 1048576.0, cli_u64(st, "acked") / 1048576.0,
	       cli_u64(st, "resent") / 1048576.0, cli_u64(st, "reconnects"),
	       cli_u64(st, "mem_peak") / 1048576.0, cli_u64(st, "spooled") / 1048576.0,
	       json_is_true(json_object_get(st, "complete")) ? ", verified by the receiver" : "");
}

/* A receive job: where it listens, what it received, each stream it shows. */
static void cli_show_receive(const json_t *job)
{
	const json_t *streams = json_object_get(job, "streams");

	printf("%-10s%s, into %s/ in the snapshot directory\n",
	       "listen:", cli_json_str(job, "listen") ?: "?",
	       cli_json_str(job, "directory") ?: "?");
	printf("%-10s%" PRIu64 " complete (%.1f MiB), %" PRIu64 " failed or incomplete\n",
	       "images:", cli_u64(job, "images"), cli_u64(job, "bytes") / 1048576.0,
	       cli_u64(job, "failed"));
	for (size_t i = 0; i < json_array_size(streams); i++) {
		const json_t *st = json_array_get(streams, i);
		const char *desc = cli_json_str(st, "desc");

		printf("  %s from %s: %s, %.1f MiB, %.1f MiB/s%s%s\n",
		       cli_json_str(st, "file") ?: "?", cli_json_str(st, "peer") ?: "?",
		       cli_json_str(st, "state") ?: "?", cli_u64(st, "bytes") / 1048576.0,
		       cli_u64(st, "rate") / 1048576.0, desc ? ": " : "", desc ? desc : "");
	}
}

/* A chain job's "chain" member. */
static void cli_show_chain(const json_t *c)
{
	char count[32] = "until cancelled";

	if (!json_is_object(c))
		return;
	if (cli_u64(c, "count"))
		snprintf(count, sizeof(count), "%" PRIu64 " images", cli_u64(c, "count"));
	printf("%-10san image every %" PRIu64 " s, %s; %" PRIu64 " written, the last %s\n",
	       "chain:", cli_u64(c, "every"), count, cli_u64(c, "images"),
	       cli_json_str(c, "last") ?: "(none yet)");
}

void cli_svc_show_job(const json_t *job)
{
	const char *state = cli_json_str(job, "state");
	char buf[512];
	uint64_t total = cli_u64(job, "total"), done = cli_u64(job, "done");

	printf("%-10s%" PRIu64 "\n", "job:", cli_u64(job, "id"));
	if (cli_is_receive(job)) {
		printf("%-10sreceive\n", "type:");
		printf("%-10s%s\n", "state:", state ? state : "?");
		printf("%-10suid %" PRIu64 "\n", "owner:", cli_u64(job, "owner"));
		cli_show_receive(job);
		cli_show_error_member("error:", json_object_get(job, "error"));
		return;
	}
	printf("%-10s%" PRIu64 "%s\n", "pid:", cli_u64(job, "pid"),
	       !strcmp(cli_json_str(job, "type") ?: "", "migrate")
		   ? " (QEMU: a migration of its guest)"
	       : json_object_get(job, "qemu") ? " (QEMU: a snapshot of its guest)"
					      : "");
	printf("%-10s%s\n", "state:", state ? state : "?");
	if (json_object_get(job, "owner"))
		printf("%-10suid %" PRIu64 "\n", "owner:", cli_u64(job, "owner"));
	printf("%-10s%s\n",
	       "output:", cli_svc_output(json_object_get(job, "output"), buf, sizeof(buf)));
	if (json_object_get(job, "created"))
		printf("%-10s%s\n",
		       "created:", cli_svc_time(json_object_get(job, "created"), buf, sizeof(buf)));
	if (json_object_get(job, "total"))
		printf("%-10s%d%% (%" PRIu64 " of %" PRIu64 " pages)\n",
		       "progress:", cli_percent(done, total), done, total);
	cli_show_chain(json_object_get(job, "chain"));
	cli_show_stream(json_object_get(job, "stream"));
	cli_show_forks(json_object_get(job, "forks"));
	cli_show_error_member("error:", json_object_get(job, "error"));
	if (json_is_object(json_object_get(job, "migration"))) {
		printf("migration:\n");
		cli_svc_show_tree(json_object_get(job, "migration"), 2);
	}
	if (json_is_object(json_object_get(job, "stats")) ||
	    json_is_object(json_object_get(job, "guest")))
		printf("statistics:\n");
	cli_svc_show_guest(stdout, json_object_get(job, "guest"));
	if (json_is_object(json_object_get(job, "stats")))
		cli_svc_show_stats(stdout, json_object_get(job, "stats"));
}

void cli_svc_show_jobs(const json_t *jobs)
{
	char out[256], progress[16];

	if (!json_array_size(jobs)) {
		printf("no jobs\n");
		return;
	}
	printf("%6s %8s %-10s %8s %6s  %s\n", "ID", "PID", "STATE", "PROGRESS", "OWNER", "OUTPUT");
	for (size_t i = 0; i < json_array_size(jobs); i++) {
		const json_t *j = json_array_get(jobs, i);
		const char *state = cli_json_str(j, "state");
		char pid[24];

		if (cli_is_receive(j)) {
			snprintf(pid, sizeof(pid), "-");
			snprintf(progress, sizeof(progress), "%" PRIu64 " img",
				 cli_u64(j, "images"));
			snprintf(out, sizeof(out), "receiving on %s",
				 cli_json_str(j, "listen") ?: "?");
		} else {
			snprintf(pid, sizeof(pid), "%" PRIu64, cli_u64(j, "pid"));
			snprintf(progress, sizeof(progress), "%d%%",
				 cli_percent(cli_u64(j, "done"), cli_u64(j, "total")));
			cli_svc_output(json_object_get(j, "output"), out, sizeof(out));
			if (json_object_get(j, "qemu")) /* the PID column is QEMU's */
				strncat(out, " (QEMU guest)", sizeof(out) - strlen(out) - 1);
		}
		printf("%6" PRIu64 " %8s %-10s %8s %6" PRIu64 "  %s\n", cli_u64(j, "id"), pid,
		       state ? state : "?", progress, cli_u64(j, "owner"), out);
	}
}

static void cli_show_value(const char *key, const json_t *v, int indent)
{
	char *text;

	if (json_is_object(v)) {
		printf("%*s%s:\n", indent, "", key);
		cli_svc_show_tree(v, indent + 2);
		return;
	}
	if (json_is_string(v)) {
		printf("%*s%s: %s\n", indent, "", key, json_string_value(v));
		return;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("%*s%s: %s\n", indent, "", key, text ? text : "?");
	free(text);
}

void cli_svc_show_tree(const json_t *obj, int indent)
{
	json_t *o = (json_t *)obj; /* jansson's iterators take no const */

	for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it))
		cli_show_value(json_object_iter_key(it), json_object_iter_value(it), indent);
}

void cli_svc_show_guest(FILE *f, const json_t *g)
{
	if (!json_is_object(g))
		return;
	fprintf(f,
		"  guest              QEMU %s (pid %" PRIu64 "), machine %s, %.1f MiB of RAM in "
		"%" PRIu64 " backend%s\n"
		"  guest downtime     %.3f ms (stop to cont), of which device state %.3f ms "
		"(%" PRIu64 " bytes)\n",
		cli_json_str(g, "qemu_version") ?: "?", cli_u64(g, "pid"),
		cli_json_str(g, "machine") ?: "?", cli_u64(g, "ram_bytes") / 1048576.0,
		cli_u64(g, "backends"), cli_u64(g, "backends") == 1 ? "" : "s",
		cli_u64(g, "downtime_ns") / 1e6, cli_u64(g, "devstate_ns") / 1e6,
		cli_u64(g, "devstate_bytes"));
}

/* A pre-copy snapshot's rounds and final hold (the "precopy" object of its statistics). */
static void cli_show_precopy(FILE *f, const json_t *pc)
{
	if (!json_is_object(pc))
		return;
	fprintf(f,
		"  pre-copy           %" PRIu64 " rounds, %s; final hold %.3f ms (predicted "
		"%.3f), %.1f MiB copied in it\n",
		cli_u64(pc, "rounds"),
		json_is_true(json_object_get(pc, "converged")) ? "converged"
		: json_is_true(json_object_get(pc, "fell_back"))
		    ? "did not converge (write protection saved the rest)"
		    : "did not converge (the rest copied while held)",
		cli_u64(pc, "freeze_ns") / 1e6, cli_u64(pc, "downtime_predicted_ns") / 1e6,
		cli_u64(pc, "freeze_bytes") / 1048576.0);
}

void cli_svc_show_chain_image(FILE *f, int64_t job, const json_t *d)
{
	const char *parent = cli_json_str(d, "parent");

	fprintf(f, "job %" PRId64 ": image %" PRIu64 " %s: %.1f MiB, %s%s\n", job,
		cli_u64(d, "index"), cli_json_str(d, "file") ?: "?",
		cli_u64(d, "bytes") / 1048576.0, parent ? "changes since " : "full",
		parent ? parent : "");
	fflush(f);
}

void cli_svc_show_stats(FILE *f, const json_t *st)
{
	fprintf(
	    f,
	    "  target held        %.3f ms (attach %.3f, arming %.3f, copying %.3f), %" PRIu64
	    " threads\n"
	    "  pages saved        %" PRIu64 " by the copier, %" PRIu64 " by write faults, %" PRIu64
	    " while held\n"
	    "  zero pages         %" PRIu64 "\n"
	    "  discarded after T  %" PRIu64 "\n"
	    "  write faults       %" PRIu64 ", service time p50 %.1f us, p99 %.1f us, max %.1f us\n"
	    "  image              %" PRIu64 " bytes (%.1f MiB), duration %.3f s\n",
	    cli_u64(st, "held_ns") / 1e6, cli_u64(st, "attach_ns") / 1e6,
	    cli_u64(st, "arm_ns") / 1e6, cli_u64(st, "copy_held_ns") / 1e6, cli_u64(st, "threads"),
	    cli_u64(st, "pages_copier"), cli_u64(st, "pages_fault"), cli_u64(st, "pages_held"),
	    cli_u64(st, "pages_zero"), cli_u64(st, "pages_discarded"), cli_u64(st, "faults"),
	    cli_u64(st, "fault_p50_ns") / 1e3, cli_u64(st, "fault_p99_ns") / 1e3,
	    cli_u64(st, "fault_max_ns") / 1e3, cli_u64(st, "bytes"),
	    cli_u64(st, "bytes") / 1048576.0, cli_u64(st, "duration_ns") / 1e9);
	if (cli_u64(st, "pinned_bytes_held") || cli_u64(st, "pinned_bytes_not_exact"))
		fprintf(f,
			"  pinned buffers     %.1f KiB io_uring registered buffers copied while held, "
			"%.1f KiB not exact (recorded as discarded)\n",
			cli_u64(st, "pinned_bytes_held") / 1024.0,
			cli_u64(st, "pinned_bytes_not_exact") / 1024.0);
	if (cli_u64(st, "io_contexts") || cli_u64(st, "io_rings_hidden") ||
	    cli_u64(st, "shared_writers") || cli_u64(st, "fd_writers"))
		fprintf(f,
			"  may not be exact   %" PRIu64 " io_uring/AIO contexts (O_DIRECT reads may be "
			"in flight), %" PRIu64 " rings that cannot be inspected,\n"
			"                     %" PRIu64 " writable mappings of its shared memory by "
			"others, %" PRIu64 " writable descriptors\n"
			"                     to shared memory that changed (the image's EVENTs say "
			"where)\n",
			cli_u64(st, "io_contexts"), cli_u64(st, "io_rings_hidden"),
			cli_u64(st, "shared_writers"), cli_u64(st, "fd_writers"));
	cli_show_precopy(f, json_object_get(st, "precopy"));
	if (cli_u64(st, "fault_sink_waits"))
		fprintf(f,
			"  sink too slow      %" PRIu64 " write faults waited for the image to be "
			"written (longest %.1f ms)\n",
			cli_u64(st, "fault_sink_waits"), cli_u64(st, "fault_sink_wait_max_ns") / 1e6);
}

/* The part of an event line after "job N": what happened. */
static void cli_show_event_detail(const char *name, const json_t *d)
{
	const char *desc = cli_json_str(d, "desc");

	if (!strcmp(name, "JOB_CREATED") && cli_json_str(d, "listen"))
		printf("created: receiving on %s", cli_json_str(d, "listen"));
	else if (!strcmp(name, "JOB_CREATED") && cli_json_str(d, "to"))
		printf("created: migration of the QEMU guest of pid %" PRIu64 " to %s",
		       cli_u64(d, "pid"), cli_json_str(d, "to"));
	else if (!strcmp(name, "MIGRATION_ROUND"))
		printf("migration round %" PRIu64 ": %" PRIu64 " bytes in %.3f ms",
		       cli_u64(d, "round"), cli_u64(d, "bytes"), cli_u64(d, "ns") / 1e6);
	else if (!strcmp(name, "JOB_COMPLETED") && json_object_get(d, "migration"))
		printf("completed: migrated, stopped to completed %.3f ms",
		       cli_u64(json_object_get(d, "migration"), "stopped_to_completed_ns") / 1e6);
	else if (!strcmp(name, "JOB_CREATED") && json_object_get(d, "qemu"))
		printf("created for the QEMU guest of pid %" PRIu64, cli_u64(d, "pid"));
	else if (!strcmp(name, "JOB_CREATED"))
		printf("created for pid %" PRIu64, cli_u64(d, "pid"));
	else if (!strcmp(name, "JOB_PROGRESS") && json_object_get(d, "acked"))
		printf("progress %d%% (%" PRIu64 " of %" PRIu64 " pages), %" PRIu64
		       " bytes sent, %" PRIu64 " acknowledged",
		       cli_percent(cli_u64(d, "done"), cli_u64(d, "total")), cli_u64(d, "done"),
		       cli_u64(d, "total"), cli_u64(d, "sent"), cli_u64(d, "acked"));
	else if (!strcmp(name, "JOB_PROGRESS"))
		printf("progress %d%% (%" PRIu64 " of %" PRIu64 " pages)",
		       cli_percent(cli_u64(d, "done"), cli_u64(d, "total")), cli_u64(d, "done"),
		       cli_u64(d, "total"));
	else if (!strcmp(name, "IMAGE_RECEIVED"))
		printf("received %s from %s, %" PRIu64 " bytes", cli_json_str(d, "file") ?: "?",
		       cli_json_str(d, "peer") ?: "?", cli_u64(d, "bytes"));
	else if (!strcmp(name, "IMAGE_FAILED"))
		printf("image %s from %s failed: %s", cli_json_str(d, "file") ?: "?",
		       cli_json_str(d, "peer") ?: "?", desc ? desc : "?");
	else if (!strcmp(name, "CHAIN_IMAGE"))
		printf("image %" PRIu64 " %s, %" PRIu64 " bytes, %s%s", cli_u64(d, "index"),
		       cli_json_str(d, "file") ?: "?", cli_u64(d, "bytes"),
		       cli_json_str(d, "parent") ? "parent " : "full",
		       cli_json_str(d, "parent") ?: "");
	else if (!strcmp(name, "JOB_COMPLETED") && json_object_get(d, "images"))
		printf("completed, %" PRIu64 " images", cli_u64(d, "images"));
	else if (!strcmp(name, "JOB_COMPLETED"))
		printf("completed, %" PRIu64 " bytes",
		       cli_u64(json_object_get(d, "stats"), "bytes"));
	else if (!strcmp(name, "JOB_FAILED"))
		printf("failed: %s", desc ? desc : "?");
	else if (!strcmp(name, "JOB_CANCELLED"))
		printf("cancelled");
	else if (!strcmp(name, "TARGET_FORKED"))
		printf("pid %" PRIu64 " forked child %" PRIu64, cli_u64(d, "pid"),
		       cli_u64(d, "child"));
	else
		printf("%s", name);
}

void cli_svc_show_event(const json_t *ev)
{
	const char *name = cli_json_str(ev, "event");
	const json_t *d = json_object_get(ev, "data");
	char when[64];

	printf("%s ",
	       *cli_svc_time(json_object_get(ev, "timestamp"), when, sizeof(when)) ? when : "-");
	if (json_object_get(d, "id"))
		printf("job %" PRIu64 " ", cli_u64(d, "id"));
	cli_show_event_detail(name ? name : "?", d);
	printf("\n");
	fflush(stdout);
}

/* ", sent 12.0 MiB, acknowledged 8.0 MiB" when the job streams to a receiver. */
static void cli_progress_stream(const struct cli_progress *p)
{
	if (p->stream)
		fprintf(stderr, ", sent %.1f MiB, acknowledged %.1f MiB", p->sent / 1048576.0,
			p->acked / 1048576.0);
}

void cli_progress_update(struct cli_progress *p, int64_t job, uint64_t done, uint64_t total)
{
	int pct = cli_percent(done, total);
	char bar[CLI_PROGRESS_BAR + 1];
	int fill = pct * CLI_PROGRESS_BAR / 100;

	if (!p->tty) {
		if (pct / CLI_PROGRESS_STEP <= p->last_step)
			return;
		p->last_step = pct / CLI_PROGRESS_STEP;
		fprintf(stderr, "job %" PRId64 ": %d%% (%" PRIu64 " of %" PRIu64 " pages)", job,
			pct, done, total);
		cli_progress_stream(p);
		fputc('\n', stderr);
		return;
	}
	memset(bar, '#', fill);
	memset(bar + fill, '.', CLI_PROGRESS_BAR - fill);
	bar[CLI_PROGRESS_BAR] = 0;
	fprintf(stderr, "\rjob %" PRId64 ": saving [%s] %3d%% (%" PRIu64 "/%" PRIu64 " pages)", job,
		bar, pct, done, total);
	cli_progress_stream(p);
	p->drawn = true;
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->drawn)
		fputc('\n', stderr);
	p->drawn = false;
}
