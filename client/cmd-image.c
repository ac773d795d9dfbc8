/* SPDX-License-Identifier: MIT */
/* The "image" command group: one row per command; help is generated from these rows. */
#include <stddef.h>

#include "cmd-image.h"

const struct cli_command cmd_image_commands[] = {
    {
	.name = "info",
	.handler = cmd_image_info,
	.usage = "FILE [--json]",
	.help = "show an image's target, snapshot time, sizes and state (FILE '-': stdin)",
	.options = "  --json   print one JSON object instead of text\n"
		   "The whole image is read and verified, so its state is part of the answer.\n"
		   "A QEMU guest's image also shows the machine type, QEMU's version, each\n"
		   "memory backend (id, type, size, address) and the device state's size.\n"
		   "Exit status 1 if the image is incomplete or corrupt (what is readable\n"
		   "is still shown, the problem is one line on stderr).\n",
    },
    {
	.name = "verify",
	.handler = cmd_image_verify,
	.usage = "FILE",
	.help = "check every frame, the index and the digest, front to back (FILE '-': stdin)",
	.options = "Exit status 0 if the image is complete and every check passes, 1 if it\n"
		   "is corrupt or incomplete (the offset and the problem are printed), 2 for\n"
		   "a usage error. Reads sequentially, so FILE may be a pipe.\n",
    },
    {
	.name = "maps",
	.handler = cmd_image_maps,
	.usage = "FILE",
	.help = "list the target's memory map at the snapshot instant, like /proc/PID/maps",
	.options = "Columns: start-end perms offset dev inode kind content path.\n"
		   "kind: anon, thp, shm, memfd, hugetlb, file-private, file-shared, text,\n"
		   "stack, heap, vdso, ...; content: tracked/copied (in the image),\n"
		   "reference (the file holds it) or none. Fields the image lacks show as 0\n"
		   "or '-'. The page data is not checked; use 'verify' for that.\n",
    },
    {
	.name = "read",
	.handler = cmd_image_read,
	.usage = "FILE --addr ADDR --length N [--output OUT [--force]]",
	.help = "write the snapshot's bytes of [ADDR, ADDR+N) to stdout or OUT",
	.options = "  -a, --addr ADDR     first address, hex (0x7f...) or decimal\n"
		   "  -l, --length N      number of bytes, hex or decimal, > 0\n"
		   "  -o, --output OUT    write to the file OUT instead of stdout ('-'); OUT gets\n"
		   "                      its name only when complete (a device is written as is)\n"
		   "  -f, --force         replace OUT if it exists\n"
		   "Zero pages read as zero bytes. Fails (exit 1, OUT left as it was) if the\n"
		   "image is corrupt, or any part of the range is not in the image or was\n"
		   "discarded after the snapshot instant. Binary data is not written to a\n"
		   "terminal: redirect or use -o.\n",
    },
    {
	.name = "core",
	.handler = cmd_image_core,
	.usage = "FILE --output CORE",
	.help = "write the snapshot as an ELF core file for gdb, eu-stack, readelf (CORE '-': stdout)",
	.options = "  -o, --output CORE   the core file to write; named only once complete\n"
		   "  -f, --force         replace CORE if it exists\n"
		   "Every thread's registers and FP/AVX state at the snapshot instant, the\n"
		   "memory the image holds (read-only file mappings by reference, NT_FILE,\n"
		   "as the kernel's default coredump_filter does), NT_AUXV, NT_PRPSINFO.\n"
		   "What the image lacks (an incomplete image, an older image without the\n"
		   "auxiliary vector or signal state) is a warning on stderr; the core is\n"
		   "written with what is there. Exit status 1 if no core could be written.\n"
		   "Read it with: gdb EXECUTABLE CORE\n",
    },
    {.name = NULL},
};
