/* SPDX-License-Identifier: MIT */
/* Thin wrappers over the userfaultfd ioctls; return -errno, never log. */
#pragma once

#include <stdint.h>

/* UFFDIO_API with the features a snapshot needs; ret_features gets what the kernel offers. */
int uffd_api(int uffd, uint64_t want, uint64_t *ret_features);
int uffd_register_wp(int uffd, uint64_t start, uint64_t len);
int uffd_unregister(int uffd, uint64_t start, uint64_t len);
/* Write-protect (wp = 1) or unprotect and wake (wp = 0). Retries EAGAIN up to a bound. */
int uffd_protect(int uffd, uint64_t start, uint64_t len, int wp);
/* Single attempt: -EAGAIN when a non-cooperative event is pending (mmap_changing). */
int uffd_unprotect_once(int uffd, uint64_t start, uint64_t len);
/*
 * True when the target's layout is changing: an mremap/munmap/MADV_DONTNEED has begun and its
 * event has not been read yet. fs/userfaultfd.c:userfaultfd_writeprotect() checks
 * ctx->mmap_changing before it even validates the range, so a zero-length request answers
 * EAGAIN (changing) or EINVAL (not changing) and touches nothing.
 */
int uffd_mmap_changing(int uffd);
