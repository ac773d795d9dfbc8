/* SPDX-License-Identifier: MIT */
/*
 * Chain jobs (service/job-chain.c): a snapshot job with "incremental" takes a chain of images
 * (engine/snapshot.h: snapshot_chain_*(), proto/FORMAT.md "Chains"), one every "every"
 * seconds, into PREFIX-0000.img, PREFIX-0001.img, ... in the snapshot directory, each named
 * only once complete and verified. The snapshot job (job-snapshot.c) runs it in its thread and
 * shows it through these calls.
 */
#pragma once

#include "service/output.h"

struct svc_chain {
	char *prefix;	  /* the job's "file"; NULL: not a chain */
	uint32_t every_s; /* seconds from one image's start to the next one's */
	uint32_t count;	  /* images to take; 0: until cancelled */
	unsigned image;	  /* atomic: the image in progress (JOB_PROGRESS "image") */
	/* Under the job's lock: the images named so far, the newest one's name, and their
	 * CHAIN_IMAGE events for the main thread (svc_job_send_queued()). */
	unsigned images;
	char *last;
	json_t *pending;
};

/*
 * The job thread: every image of the chain of j->pid, with opts (pre-copy). ret_stats: the
 * last image's. 0 once count images are named; else -errno + j->err, or the cancel's value if
 * cancelled (or the target went) between two images.
 */
int svc_chain_run(struct svc_job *j, struct svc_chain *c, const struct snap_opts *opts,
		  struct snap_stats *ret_stats);
/* The "chain" member of query-job of job j. */
json_t *svc_chain_json(struct svc_job *j, const struct svc_chain *c);
/* Does the chain write a file of that name (PREFIX-NNNN.img, any index)? */
bool svc_chain_writes(const struct svc_chain *c, const char *name);
void svc_chain_free(struct svc_chain *c);
