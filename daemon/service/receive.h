/* SPDX-License-Identifier: MIT */
/* Receive jobs (service/receive.c): a stream receiver writing into received/. */
#pragma once

#include "service/job.h"

/* One stream of a receive job, as its thread last reported it (under the job's lock). */
struct svc_recv_stream {
	char file[128], peer[64], why[256];
	enum recv_stream_state state;
	uint64_t bytes, rate, elapsed_ns;
};

struct svc_recv_job {
	struct svc_job job;
	char *listen; /* the address it listens on */
	int listen_fd, dir_fd;
	/* Under the job's lock. */
	json_t *pending; /* events for the main thread to send */
	struct svc_recv_stream streams[SVC_RECV_STREAMS];
	unsigned nstreams;
	uint64_t images, failed_images, bytes_received;
};

/* A new receive job (see svc_job_new()); its fields are then set by the command. */
struct svc_recv_job *svc_recv_job_new(uid_t owner);
