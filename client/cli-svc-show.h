/* SPDX-License-Identifier: MIT */
/*
 * Human-readable forms of the daemon's job objects, events and statistics (CONTROL.md), for
 * uffsnapctl's service commands. Members the daemon leaves out are left out, not guessed.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

/* "2026-11-21 12:00:00" (local time) from {"seconds": ..., "microseconds": ...}; "" if absent. */
const char *cli_svc_time(const json_t *ts, char *buf, size_t len);

/* Where a job writes: "file db.img (in the snapshot directory)", "a file descriptor", ... */
const char *cli_svc_output(const json_t *output, char *buf, size_t len);

/* `uffsnapctl job`: one job, one "key: value" line per member present. */
void cli_svc_show_job(const json_t *job);

/* `uffsnapctl jobs`: a table, one job per line, with a header. */
void cli_svc_show_jobs(const json_t *jobs);

/* `uffsnapctl status`: every member as "key: value", nested objects indented. */
void cli_svc_show_tree(const json_t *obj, int indent);

/* `uffsnapctl watch`: one line per event ("12:00:00 job 3 progress 40% (...)"). */
void cli_svc_show_event(const json_t *ev);

/* A guest job's "guest" object (CONTROL.md): QEMU, downtime, device state; nothing if absent. */
void cli_svc_show_guest(FILE *f, const json_t *guest);
/* A CHAIN_IMAGE event's data as one line: "job 3: image 1 db-0001.img: ..., changes since ...". */
void cli_svc_show_chain_image(FILE *f, int64_t job, const json_t *data);
/* The statistics of a completed job, as uffsnapd prints them after a one-shot snapshot. */
void cli_svc_show_stats(FILE *f, const json_t *stats);

/* Progress of one job: a bar redrawn in place on a terminal, else a line every 10%. */
struct cli_progress {
	bool tty;
	bool drawn;    /* the bar is on screen: end the line before printing anything else */
	int last_step; /* start at -1 */
	bool stream;   /* a stream to a receiver: sent and acked are shown too */
	uint64_t sent, acked;
};

void cli_progress_update(struct cli_progress *p, int64_t job, uint64_t done, uint64_t total);
/* Ends the bar's line, if one is drawn. */
void cli_progress_end(struct cli_progress *p);
