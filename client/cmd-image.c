/* SPDX-License-Identifier: MIT */
/* The "image" command group: one row per command; help is generated from these rows. */
#include <stddef.h>

#include "cli-image.h"
#include "cmd-image.h"

/* What every command that reads pages says of incremental images (format 1.2). */
#define INCREMENTAL_HELP                                                                           \
	"An incremental image (only what changed since its parent) is read through its\n"          \
	"chain: its parent, found beside it by the digest its metadata names, and the\n"           \
	"parent's own parents, down to a full image; a missing or mismatched parent is\n"          \
	"an error.\n"

const struct cli_command cmd_image_commands[] = {
    {
	.name = "info",
	.handler = cmd_image_info,
	.usage = "FILE [--json] [--parent PATH]",
	.help = "show an image's target, snapshot time, sizes and state (FILE '-': stdin)",
	.options = "      --json          print one JSON object instead of text\n" CLI_PARENT_HELP
		   "The whole image is read and verified, so its state is part of the answer.\n"
		   "A QEMU guest's image also shows the machine type, QEMU's version and\n"
		   "binary, each memory backend (id, type, size, address) and the device\n"
		   "state's size. A pre-copy image shows the pages later rounds rewrote\n"
		   "(superseded) and unmapped; an incremental one its parent and its chain:\n"
		   "each image's file, time and digest, and the pages of the chain's instant.\n"
		   "Exit status 1 if the image is incomplete or corrupt, or its chain cannot\n"
		   "be resolved (what is readable is still shown, the problem is one line on\n"
		   "stderr).\n",
    },
    {
	.name = "verify",
	.handler = cmd_image_verify,
	.usage = "FILE [--parent PATH]",
	.help = "check every frame, the index and the digest, front to back (FILE '-': stdin)",
	.options = "" CLI_PARENT_HELP
		   "Exit status 0 if the image is complete and every check passes, 1 if it\n"
		   "is corrupt or incomplete (the offset and the problem are printed), 2 for\n"
		   "a usage error. Reads sequentially, so FILE may be a pipe. An incremental\n"
		   "image's chain is checked too: each parent found, named by its child's\n"
		   "digest, and verified in turn (the failing link is named); from a pipe,\n"
		   "only the image itself is checked, as the output says.\n",
    },
    {
	.name = "maps",
	.handler = cmd_image_maps,
	.usage = "FILE [--parent PATH]",
	.help = "list the target's memory map at the snapshot instant, like /proc/PID/maps",
	.options =
	    "" CLI_PARENT_HELP "Columns: start-end perms offset dev inode kind content path.\n"
	    "kind: anon, thp, shm, memfd, hugetlb, file-private, file-shared, text,\n"
	    "stack, heap, vdso, ...; content: tracked/copied (in the image),\n"
	    "reference (the file holds it) or none. Fields the image lacks show as 0\n"
	    "or '-'. The page data is not checked; use 'verify' for that. An\n"
	    "incremental image's map is its own metadata's; its chain must resolve\n"
	    "all the same.\n",
    },
    {
	.name = "read",
	.handler = cmd_image_read,
	.usage = "FILE --addr ADDR --length N [--output OUT [--force]] [--parent PATH]",
	.help = "write the snapshot's bytes of [ADDR, ADDR+N) to stdout or OUT",
	.options = "  -a, --addr ADDR     first address, hex (0x7f...) or decimal\n"
		   "  -l, --length N      number of bytes, hex or decimal, > 0\n"
		   "  -o, --output OUT    write to the file OUT instead of stdout ('-'); OUT gets\n"
		   "                      its name only when complete (a device is written as is)\n"
		   "  -f, --force         replace OUT if it exists\n" CLI_PARENT_HELP
		   "Zero pages read as zero bytes. Fails (exit 1, OUT left as it was) if the\n"
		   "image is corrupt, or any part of the range is not in the image, was not\n"
		   "mapped at the snapshot instant or was discarded after it. Binary data is\n"
		   "not written to a terminal: redirect or use -o.\n" INCREMENTAL_HELP,
    },
    {
	.name = "core",
	.handler = cmd_image_core,
	.usage = "FILE --output CORE [--parent PATH]",
	.help =
	    "write the snapshot as an ELF core file for gdb, eu-stack, readelf (CORE '-': stdout)",
	.options = "  -o, --output CORE   the core file to write; named only once complete\n"
		   "  -f, --force         replace CORE if it exists\n" CLI_PARENT_HELP
		   "Every thread's registers and FP/AVX state at the snapshot instant, the\n"
		   "memory the image holds (read-only file mappings by reference, NT_FILE,\n"
		   "as the kernel's default coredump_filter does), NT_AUXV, NT_PRPSINFO.\n"
		   "What the image lacks (an incomplete image, an older image without the\n"
		   "auxiliary vector or signal state) is a warning on stderr; the core is\n"
		   "written with what is there. Exit status 1 if no core could be written.\n"
		   "Read it with: gdb EXECUTABLE CORE\n" INCREMENTAL_HELP,
    },
    {
	.name = "flatten",
	.handler = cmd_image_flatten,
	.usage = "FILE --output FULL [--parent PATH] [--force]",
	.help = "write an incremental image and its parents as one full image",
	.options = "  -o, --output FULL   the image to write; named only once complete\n"
		   "  -f, --force         replace FULL if it exists\n" CLI_PARENT_HELP
		   "FULL holds the pages of FILE's instant, resolved through its chain, with\n"
		   "FILE's metadata (without its parent) and device state: it reads without\n"
		   "any parent, and is what `qemu restore` takes. Events and progress marks\n"
		   "are left out. A pre-copy FILE is resolved the same way. FILE must be\n"
		   "complete; on any failure FULL is not created.\n",
    },
    {.name = NULL},
};
