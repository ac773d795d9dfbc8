/* SPDX-License-Identifier: MIT */
/* Outputs in the snapshot directory (service/output.c), and the kernel probe for query-status. */
#pragma once

#include "service/job.h"

/* The way to a new image name in the snapshot directory: an unnamed file (SVC_FILE_MODE),
 * if name is free (no file, no running job writes it); fd or -errno + err. */
int svc_output_create(struct svc *svc, const char *name, struct ctl_error *err);
/* Job j's complete image in fd: verified, synced, named name, given to j->owner:j->owner_gid.
 * 0, or -errno + j->err. */
int svc_output_finish(struct svc_job *j, int fd, const char *name);
/* Probes the uffd features and PAGEMAP_SCAN for query-status. */
void svc_probe_kernel(struct svc *svc);
