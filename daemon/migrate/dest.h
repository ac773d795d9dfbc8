/* SPDX-License-Identifier: MIT */
/*
 * The destination QEMU of a migration (dest.c), started as libvirt would: the guest's
 * configuration, its RAM in `memory-backend-file,share=on` files, `-incoming defer`. The
 * receiver checks an incoming image's guest against it, writes the RAM into its backend files
 * and starts its incoming migration (x-ignore-shared: only the device state comes through it).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "migrate/apply.h"

struct mdest;

/* Connects to the QMP socket; QEMU must wait in `inmigrate` with file backends we can open. */
int mdest_open(const char *qmp_path, struct mdest **ret, char *msg, size_t len);
void mdest_free(struct mdest *d);
/*
 * The image's first META (json): its `guest` must run this QEMU's machine type with the same
 * backends (ids and sizes), else one line says what differs. Gives the backends to a.
 */
int mdest_check_meta(struct mdest *d, const char *json, struct apply *a, char *msg, size_t len);
/* The instant's META: when the source stopped (guest.migration.stopped_realtime_ns). */
void mdest_instant_meta(struct mdest *d, const char *json);
/*
 * x-ignore-shared and events on, then `migrate-incoming` on bind (HOST:PORT; PORT 0: QEMU
 * picks one). uri gets what the source QEMU must connect to: tcp:ADVERTISE:PORT, advertise
 * being the host to name (bind's host when it is not a wildcard). Once only.
 */
int mdest_incoming(struct mdest *d, const char *bind, const char *advertise, char *uri,
		   size_t urilen, char *msg, size_t len);
/* QEMU's QMP socket, to poll while the RAM arrives; mdest_poll() then reads what came. */
int mdest_fd(const struct mdest *d);
/* Reads QEMU's events; -EPIPE (msg says so) once QEMU is gone or its migration failed. */
int mdest_poll(struct mdest *d, char *msg, size_t len);
/* Syncs every backend file. */
int mdest_sync(struct mdest *d);
/*
 * After the last page: waits until the guest runs here (RESUME), then puts QEMU's migration
 * capabilities back; or QEMU's incoming migration failed or QEMU exited (-EIO, -EPIPE, msg). *ret_resumed_ns: RESUME's timestamp
 * (CLOCK_REALTIME of this host); *ret_stopped_ns: the source's stop, as its image said (0 if
 * it did not).
 */
int mdest_wait_running(struct mdest *d, int64_t *ret_resumed_ns, int64_t *ret_stopped_ns, char *msg,
		       size_t len);
