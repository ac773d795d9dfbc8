/* SPDX-License-Identifier: MIT */
/*
 * Migration jobs (service/job-migrate.c): the live migration of a QEMU guest (migrate/source.h)
 * whose QMP connection the client passed ("qemu"), its RAM streamed with the daemon's key to a
 * migration receiver ("to": `uffsnapd --receive --qemu`).
 */
#pragma once

#include "migrate/source.h"
#include "service/job-snapshot.h"

struct svc_mig_job {
	struct svc_job job;
	int qmp_fd; /* the client's connection to QEMU's QMP socket, until the thread takes it */
	char *qemu; /* its fd name, for query-job */
	char *to;   /* the migration receiver, HOST:PORT */
	bool strict_downtime;
	uint32_t downtime_ms, max_rounds; /* 0: the engine's defaults */
	uint64_t done, total;		  /* atomic: progress of the round in progress, pages */
	uint64_t sent_done, sent_acked;	  /* in the last JOB_PROGRESS */
	struct snap_stats stats;	  /* written by the job thread before finished */
	struct migrate_stats mig;	  /* likewise */
	/* Under the job's lock. */
	unsigned rounds;	       /* rounds ended so far */
	json_t *pending;	       /* MIGRATION_ROUND events for the main thread to send */
	struct img_sink *sink;	       /* the stream, while the job thread has it */
	struct stream_counters stream; /* the counters last read */
};

/* A new migration job (see svc_job_new()); its fields are then set by the command. */
struct svc_mig_job *svc_mig_job_new(uid_t owner);
