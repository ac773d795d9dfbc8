/* SPDX-License-Identifier: MIT */
/* Migration receiver mode: `uffsnapd --receive --qemu DEST_QMP --listen ADDR:PORT --key FILE`. */
#pragma once

/* Runs one migration into the destination QEMU; returns the process exit status. */
int migrate_recv_main(int argc, char **argv);
