/* SPDX-License-Identifier: MIT */
/* uffsnapctl image ...: the image tools (no daemon needed). */
#pragma once

#include "cli-command.h"

/* The "image" group's commands, ended by a row with name NULL. */
extern const struct cli_command cmd_image_commands[];

int cmd_image_info(const struct cli_invocation *inv, int argc, char **argv);
int cmd_image_verify(const struct cli_invocation *inv, int argc, char **argv);
int cmd_image_maps(const struct cli_invocation *inv, int argc, char **argv);
int cmd_image_read(const struct cli_invocation *inv, int argc, char **argv);
int cmd_image_core(const struct cli_invocation *inv, int argc, char **argv);
int cmd_image_flatten(const struct cli_invocation *inv, int argc, char **argv);
