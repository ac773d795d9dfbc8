/* SPDX-License-Identifier: MIT */
/*
 * Shared memory the snapshot saves (memfd, tmpfs and /dev/shm files, shared anonymous and
 * SysV memory, shared hugetlbfs) that something other than the target's own mappings writes:
 * write protection is a bit in the target's page tables, so it sees neither
 *
 * - another process writing the same object through its own mapping (a second mapping of a
 *   memfd or /dev/shm file, MAP_SHARED|MAP_ANONYMOUS memory a child inherited, a vhost-user
 *   backend mapping a QEMU guest's RAM): found by the object's device and inode in every
 *   process's /proc/PID/maps, just after the instant and at the end; each is an EVENT with the
 *   process's pid, name and the range both map, and --strict fails instead; nor
 * - a write through a descriptor (write, pwrite, fallocate, truncate, splice,
 *   copy_file_range: shmem copies into its page cache page, no page table involved). Each
 *   such write moves the object's ctime (fine-grained once read: tmpfs has multigrain
 *   timestamps), so an object whose ctime did not move between the instant and the end was
 *   written through no descriptor. One whose ctime moved and which some process holds open
 *   for writing (or which has a name any process may open) is named in an EVENT, but
 *   --strict does not fail: every write fault through a shared mapping of shmem moves the
 *   ctime too (mm/memory.c fault_dirty_shared_page(): file_update_time() when the VMA has no
 *   page_mkwrite; measured: it moves in a snapshot in which the target only writes pages of
 *   its memfd that were dirty already), so the two cannot be told apart, and QEMU keeps its
 *   memfd open for writing. Nor can inotify tell (measured on 6.18: no event for a pwrite()
 *   to a memfd, a pseudo file: FMODE_NONOTIFY).
 */
#pragma once

struct snap;

/* While held at the instant: the shared objects the image saves, and their ctimes. */
int shared_note_instant(struct snap *s);
/* After the instant: other processes that map those objects writably (EVENTs; --strict
 * fails), and the descriptors open for writing to them (remembered). */
int shared_scan(struct snap *s);
/* After the copy: shared_scan() again, then EVENTs for the descriptors of objects that changed. */
int shared_finish(struct snap *s);
void shared_free(struct snap *s);
