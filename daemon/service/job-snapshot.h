/* SPDX-License-Identifier: MIT */
/*
 * Snapshot jobs (service/job-snapshot.c): the engine, to a file, an fd or a receiver ("to"); of
 * a process, or of a QEMU guest whose QMP socket the client passed ("qemu", guest/guest.h).
 */
#pragma once

#include "guest/guest.h"
#include "service/job-chain.h"

struct svc_snap_job {
	struct svc_job job;
	int out_fd;
	char *file, *fdname; /* the output, for query-job */
	char *to;	     /* or a receiver at HOST:PORT */
	int qmp_fd;	     /* a guest's: the client's connection to QEMU's QMP socket */
	char *qemu;	     /* its fd name, for query-job; NULL: a process, not a guest */
	bool strict;
	uint32_t window;
	/* "precopy" (always, for a chain) and its budget; 0: the engine's defaults */
	bool precopy, strict_downtime;
	uint32_t downtime_ms, max_rounds;
	struct svc_chain chain;	 /* "incremental": chain.prefix is file */
	uint64_t done, total;	 /* atomic: progress in pages */
	uint64_t sent_done;	 /* last JOB_PROGRESS sent */
	uint64_t sent_acked;	 /* "to": acked in the last JOB_PROGRESS */
	unsigned sent_image;	 /* a chain's: image in the last JOB_PROGRESS */
	struct snap_stats stats; /* written by the job thread before finished */
	struct guest_stats guest; /* a guest's, likewise */
	/* Under the job's lock. */
	struct img_sink *sink;	       /* "to": the stream, while the job thread has it */
	struct stream_counters stream; /* "to": the counters last read */
};

/* A new snapshot job (see svc_job_new()); its fields are then set by the command. */
struct svc_snap_job *svc_snap_job_new(uid_t owner);
/* Makes the new job a chain of images PREFIX-NNNN.img (its "file"): 0 or -ENOMEM. */
int svc_snap_job_chain(struct svc_snap_job *s, const char *prefix, uint32_t every_s,
		       uint32_t count);
