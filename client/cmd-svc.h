/* SPDX-License-Identifier: MIT */
/* uffsnapctl's service commands: they talk to `uffsnapd --service` (proto/CONTROL.md). */
#pragma once

#include "cli-command.h"

int cmd_svc_snapshot(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_migrate(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_receive(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_jobs(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_job(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_cancel(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_watch(const struct cli_invocation *inv, int argc, char **argv);
int cmd_svc_status(const struct cli_invocation *inv, int argc, char **argv);
