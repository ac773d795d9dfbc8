/* SPDX-License-Identifier: MIT */
/* The "qemu" command group: one row per command; help is generated from these rows. */
#include <stddef.h>

#include "cmd-qemu.h"

const struct cli_command cmd_qemu_commands[] = {
    {
	.name = "restore",
	.handler = cmd_qemu_restore,
	.usage = "FILE (--qmp SOCKET | [--ram-dir DIR] [--dry-run] [-- QEMU-ARGS...]) "
		 "[--allow-holes]",
	.help = "restore a QEMU guest's image into a stock QEMU and resume the guest",
	.options =
	    "  --qmp SOCKET    restore into the QEMU listening on this QMP unix socket, which\n"
	    "                  you started with the guest's configuration (same -machine, -smp,\n"
	    "                  devices), each memory backend as memory-backend-file with the\n"
	    "                  image's id and size and share=on, and -incoming defer. Each\n"
	    "                  backend's file (its mem-path) is overwritten with the guest RAM:\n"
	    "                  the guest then writes into it, so never use a file you want kept\n"
	    "  --ram-dir DIR   without --qmp: where the RAM files (DIR/ID.ram), the QMP socket\n"
	    "                  (DIR/qmp.sock) and QEMU's output (DIR/qemu.log) go; created if\n"
	    "                  needed, files in it are never overwritten (default: a new\n"
	    "                  directory beside FILE, FILE without .img plus .restore)\n"
	    "  --dry-run       print the QEMU command line (shell-quoted) and do nothing\n"
	    "  --allow-holes   restore even if guest RAM is missing or discarded in the image\n"
	    "                  (as zeros: the guest will likely crash)\n"
	    "  -- QEMU-ARGS    the QEMU command line to use, binary first, instead of the one the\n"
	    "                  image recorded (the binary it recorded, if it still exists)\n"
	    "Without --qmp it starts QEMU itself with that command line, every backend of the\n"
	    "image turned into memory-backend-file,mem-path=DIR/ID.ram,share=on (other options\n"
	    "kept), any -incoming replaced by -incoming defer, and -qmp unix:DIR/qmp.sock added\n"
	    "(other monitors kept: sockets and pidfiles of the snapshotted QEMU's command line\n"
	    "may clash with it if it still runs; give QEMU-ARGS then). That QEMU runs in its own\n"
	    "session and keeps running after uffsnapctl exits; if the restore fails it is\n"
	    "stopped.\n"
	    "Before writing anything it checks that the image holds all the guest RAM and its\n"
	    "whole device state, that QEMU waits in 'inmigrate', and that its machine type and\n"
	    "backends (ids, sizes) are the image's, naming each difference. Then it writes the\n"
	    "RAM (zero pages become holes), loads the device state with x-ignore-shared, and\n"
	    "runs 'cont'. Exit status 0 when the guest runs, 1 otherwise.\n",
    },
    {.name = NULL},
};
