/* SPDX-License-Identifier: MIT */
/*
 * What uffsnapctl's service commands share: the --socket/--json options, connecting with
 * messages that say what to do, running one control command and reporting the daemon's
 * refusal, and waiting for events or Ctrl-C (a signalfd polled next to the socket).
 */
#pragma once

#include <stdbool.h>
#include <jansson.h>

#include "cli-args.h"
#include "cli-command.h"
#include "uffsnap/client.h"

/* How long to wait for a reply: the daemon answers at once and runs jobs in the background. */
#define CLI_SVC_REPLY_TIMEOUT_MS 60000

/* getopt_long values of the options every service command takes. */
enum {
	CLI_SVC_OPT_SOCKET = 0x100,
	CLI_SVC_OPT_JSON,
};

/* clang-format off */
#define CLI_SVC_LONGOPTS                                                                           \
	{"socket", required_argument, NULL, CLI_SVC_OPT_SOCKET},                                   \
	{"json", no_argument, NULL, CLI_SVC_OPT_JSON}
/* clang-format on */

#define CLI_SVC_OPTIONS_HELP                                                                       \
	"  --socket PATH   uffsnapd's control socket (also accepted before the command); by\n"     \
	"                  default $UFFSNAP_SOCKET, else " UFFSNAP_CLIENT_DEFAULT_SOCKET "\n"      \
	"  --json          print the daemon's JSON replies and events, one per line\n"

struct cli_svc {
	const struct cli_invocation *inv;
	const char *socket; /* from --socket; NULL: $UFFSNAP_SOCKET or the default */
	bool json;
	struct uffsnap_client *client;
	int sigfd; /* signalfd of SIGINT/SIGTERM once cli_svc_catch_signals() ran, else -EBADF */
};

void cli_svc_init(struct cli_svc *s, const struct cli_invocation *inv);

/* Takes a common option (getopt's return c); returns true if it was one. */
bool cli_svc_option(struct cli_svc *s, int c, const char *arg);

/* Rejects operands after the options: returns false after a usage error if there are some. */
bool cli_svc_no_operands(struct cli_svc *s, int argc, char **argv);

/* The socket path in effect. */
const char *cli_svc_socket(const struct cli_svc *s);

/* Connects; on failure prints one line saying what to do and returns CLI_EXIT_FAILURE. */
int cli_svc_connect(struct cli_svc *s);

/*
 * Runs a command (see uffsnap_client_execute()); on failure prints one line -- the daemon's
 * description with a hint for its class, or what happened to the connection -- and returns
 * CLI_EXIT_FAILURE. On success *ret_return holds the "return" value (may be NULL).
 */
int cli_svc_call(struct cli_svc *s, const char *command, json_t *arguments,
		 const struct uffsnap_client_fd *pass, json_t **ret_return);
/* The same, passing npass fds (uffsnap_client_execute_fds()). */
int cli_svc_call_fds(struct cli_svc *s, const char *command, json_t *arguments,
		     const struct uffsnap_client_fd *pass, size_t npass, json_t **ret_return);

/*
 * --qemu: our own connection to a guest's QMP socket (so the daemon never opens a path of
 * ours, and QEMU sees who asks), to be passed before its greeting is read: the daemon reads
 * it. CLI_EXIT_OK and *ret_fd, or a failure printed.
 */
int cli_svc_connect_qmp(struct cli_svc *s, const char *path, int *ret_fd);

/* Blocks SIGINT and SIGTERM and makes them readable on s->sigfd. -errno on failure. */
int cli_svc_catch_signals(struct cli_svc *s);

/*
 * The next event, or 0 with *ret_event NULL when SIGINT/SIGTERM arrived (needs
 * cli_svc_catch_signals()). On a broken connection prints why and returns CLI_EXIT_FAILURE.
 */
int cli_svc_next_event(struct cli_svc *s, json_t **ret_event);

/* Disconnects and restores the signal mask. */
void cli_svc_close(struct cli_svc *s);

/* Prints j as one compact JSON line on stdout and flushes it (for --json). */
void cli_svc_print_json(const json_t *j);

/* Parses a job id operand ("3"): a positive integer. Prints a usage error and returns -EINVAL. */
int cli_svc_parse_job_id(struct cli_svc *s, const char *arg, json_int_t *ret_id);
