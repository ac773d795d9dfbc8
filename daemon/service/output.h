/* SPDX-License-Identifier: MIT */
/* Outputs in the snapshot directory (service/output.c), and the kernel probe for query-status. */
#pragma once

#include "service/job.h"

/* The way to a new image name in the snapshot directory: an unnamed file (SVC_FILE_MODE),
 * if name is free (no file, no running job writes it); fd or -errno + err. */
int svc_output_create(struct svc *svc, const char *name, struct ctl_error *err);
/* An unnamed file (SVC_FILE_MODE) in the snapshot directory, for any name: fd or -errno. */
int svc_output_unnamed(struct svc *svc);
/*
 * A chain's images are PREFIX-0000.img, PREFIX-0001.img, ...: may prefix begin one? Refused
 * (err) if the names would be too long, or PREFIX-0000.img exists or a running job writes it.
 */
#define SVC_CHAIN_SUFFIX0 "-0000.img"
int svc_output_chain_check(struct svc *svc, const char *prefix, struct ctl_error *err);
/* Names the complete, verified, synced image in fd name and gives it to j->owner:j->owner_gid
 * (-EEXIST if a file of that name appeared). 0, or -errno + j->err. */
int svc_output_name(struct svc_job *j, int fd, const char *name);
/* Job j's complete image in fd: verified, synced, named name, given to j->owner:j->owner_gid.
 * 0, or -errno + j->err. */
int svc_output_finish(struct svc_job *j, int fd, const char *name);
/* Probes the uffd features and PAGEMAP_SCAN for query-status. */
void svc_probe_kernel(struct svc *svc);
