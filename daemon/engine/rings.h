/* SPDX-License-Identifier: MIT */
/*
 * io_uring rings and AIO contexts: what the kernel may write into the target's memory behind
 * write protection's back besides the registered buffers engine/pinned.c copies.
 *
 * - A ring whose descriptor the target closed (after io_uring_register_ring_fd(), or with
 *   only its mappings left) still runs; its registered buffers are pinned as ever, but they
 *   are listed only in the fdinfo of a descriptor, and an anonymous inode cannot be opened
 *   again (on 6.18 open("/proc/PID/map_files/...") of its mapping fails with ENXIO). Such a
 *   ring is found by its mappings (anon_inode:[io_uring], whose inode no descriptor has).
 * - A ring set up with IORING_SETUP_NO_MMAP has its SQ and CQ rings in the target's own
 *   memory, pinned, and the kernel writes every completion there; nothing says where. It is
 *   the descriptor with no mapping. (With no descriptor either, nothing finds it at all.)
 * - Reads in flight at the instant into ordinary buffers with O_DIRECT (io_uring, or AIO:
 *   "/[aio] (deleted)" mappings) were pinned when issued and land after it; the kernel lists
 *   no buffers of requests in flight. Every context that may have some is named.
 */
#pragma once

struct snap;

/*
 * While held, after pinned_save_held(): one EVENT "may-not-be-exact" per ring that cannot be
 * inspected (counted in io_rings_hidden; --strict fails the snapshot instead) and per context
 * that may have reads in flight (io_contexts). Returns 0 or -errno.
 */
int rings_note_held(struct snap *s);
