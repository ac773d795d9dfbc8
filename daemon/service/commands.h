/* SPDX-License-Identifier: MIT */
/* The control commands (service/commands.c): above the jobs and clients they use. */
#pragma once

#include "service/client.h"

extern const struct ctl_command svc_commands[];
/* Handles one line from c: parses, runs, queues the reply (an svc_line_fn). */
void svc_handle_line(struct svc_client *c, const char *line, size_t len);
