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
	uint32_t copy_threads; /* 0: the engine's default */
	uint64_t mem_limit;    /* bytes, the fault queue's; with to, its and the stream's together
				  (stream_snap_mem_split()); 0: the defaults */
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

/* The "stream" object of a job streaming to a receiver (as uffsnapd --json prints it). */
json_t *svc_stream_json(const struct stream_counters *c);
struct qmp;
/*
 * A guest job's thread: waits for QEMU's greeting on the QMP connection the client passed
 * (*qmp_fd, taken: -EBADF after) or a cancel (j->stop_fd), then speaks QMP on it. 0 and *ret,
 * or -errno with j->err filled.
 */
int svc_qmp_open(struct svc_job *j, int *qmp_fd, struct qmp **ret);
/*
 * The end of a stream a job's thread made (its main thread reads *shared under the job's
 * lock): keeps its last counters in *ret, appends what the network did to a failure's message
 * (r < 0), and frees it.
 */
void svc_stream_end(struct svc_job *j, struct img_sink **shared, struct stream_counters *ret,
		    struct img_sink *sink, int r);
