/* SPDX-License-Identifier: MIT */
/* uffsnapctl qemu ...: QEMU guests' images (no daemon needed). */
#pragma once

#include "cli-command.h"

/* The "qemu" group's commands, ended by a row with name NULL. */
extern const struct cli_command cmd_qemu_commands[];

int cmd_qemu_restore(const struct cli_invocation *inv, int argc, char **argv);
