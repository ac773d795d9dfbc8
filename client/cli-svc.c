/* SPDX-License-Identifier: MIT */
/* Connecting to uffsnapd's control socket and running commands, for uffsnapctl. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-svc.h"

void cli_svc_init(struct cli_svc *s, const struct cli_invocation *inv)
{
	*s = (struct cli_svc){.inv = inv, .sigfd = -EBADF};
}

bool cli_svc_option(struct cli_svc *s, int c, const char *arg)
{
	if (c == CLI_SVC_OPT_SOCKET)
		s->socket = arg;
	else if (c == CLI_SVC_OPT_JSON)
		s->json = true;
	else
		return false;
	return true;
}

bool cli_svc_no_operands(struct cli_svc *s, int argc, char **argv)
{
	if (optind < argc) {
		cli_usage_error(s->inv, "unexpected argument '%s'", argv[optind]);
		return false;
	}
	return true;
}

const char *cli_svc_socket(const struct cli_svc *s)
{
	const char *env = getenv("UFFSNAP_SOCKET");

	if (s->socket)
		return s->socket;
	return env && *env ? env : UFFSNAP_CLIENT_DEFAULT_SOCKET;
}

/* What to do about a failed connect(2) or greeting. */
static const char *cli_svc_connect_hint(int r)
{
	switch (r) {
	case -ENOENT:
	case -ECONNREFUSED:
		return " (is uffsnapd --service running? see --socket)";
	case -EACCES:
	case -EPERM:
		return " (the control socket is for root and members of the uffsnap group)";
	case -ENAMETOOLONG:
		return " (a socket path has at most 107 bytes)";
	case -ECONNRESET:
	case -EBADMSG:
		return " (is it uffsnapd's control socket? see --socket)";
	case -EPROTONOSUPPORT:
		return " (uffsnapd and uffsnapctl are of different versions: install matching "
		       "ones)";
	default:
		return "";
	}
}

int cli_svc_connect(struct cli_svc *s)
{
	struct uffsnap_client_error e;
	const char *path = cli_svc_socket(s);
	char msg[128];
	int r;

	r = uffsnap_client_connect(path, CLI_SVC_REPLY_TIMEOUT_MS, &s->client, &e);
	if (r == -EREMOTEIO) {
		fprintf(stderr, "%s: uffsnapd at %s refused the connection: %s\n", s->inv->path,
			path, e.desc);
		return CLI_EXIT_FAILURE;
	}
	if (r < 0) {
		if (r == -ENOENT)
			snprintf(msg, sizeof(msg), "no such file");
		else if (r == -EBADMSG)
			snprintf(msg, sizeof(msg), "unexpected greeting");
		else
			cli_strerror(r, msg, sizeof(msg));
		fprintf(stderr, "%s: cannot connect to %s: %s%s\n", s->inv->path, path, msg,
			cli_svc_connect_hint(r));
		return CLI_EXIT_FAILURE;
	}
	uffsnap_client_set_timeout(s->client, CLI_SVC_REPLY_TIMEOUT_MS);
	return CLI_EXIT_OK;
}

/* What to do about the daemon's refusal, by class (CONTROL.md, Error classes). */
static const char *cli_svc_class_hint(const char *class, const char *command)
{
	if (!strcmp(class, "PermissionDenied") && strcmp(command, "snapshot"))
		return ""; /* the daemon's description says who may */
	static const struct {
		const char *class, *hint;
	} hints[] = {
	    {"PermissionDenied", " (you may snapshot only a process you could ptrace yourself: "
				 "your own, or any as root; the uffsnap group grants only the use "
				 "of the socket)"},
	    {"Busy", " (see 'uffsnapctl jobs'; cancel it or wait for it to end)"},
	    {"LimitExceeded", " (see 'uffsnapctl jobs'; retry when some have ended)"},
	    {"CommandNotFound", " (is uffsnapd older than uffsnapctl? see 'uffsnapctl status')"},
	};

	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (!strcmp(class, hints[i].class))
			return hints[i].hint;
	return "";
}

/* One line about a connection that failed in the middle. */
static void cli_svc_connection_error(const struct cli_svc *s, int r)
{
	char msg[128];

	if (r == -ECONNRESET)
		snprintf(msg, sizeof(msg),
			 "uffsnapd closed the connection (did it stop? see its log)");
	else if (r == -ETIMEDOUT)
		snprintf(msg, sizeof(msg), "uffsnapd did not answer within %d s",
			 CLI_SVC_REPLY_TIMEOUT_MS / 1000);
	else if (r == -EBADMSG || r == -EMSGSIZE)
		snprintf(msg, sizeof(msg), "uffsnapd sent something that is not the protocol");
	else
		cli_strerror(r, msg, sizeof(msg));
	fprintf(stderr, "%s: %s: %s\n", s->inv->path, cli_svc_socket(s), msg);
}

int cli_svc_call(struct cli_svc *s, const char *command, json_t *arguments,
		 const struct uffsnap_client_fd *pass, json_t **ret_return)
{
	return cli_svc_call_fds(s, command, arguments, pass, pass ? 1 : 0, ret_return);
}

int cli_svc_call_fds(struct cli_svc *s, const char *command, json_t *arguments,
		     const struct uffsnap_client_fd *pass, size_t npass, json_t **ret_return)
{
	struct uffsnap_client_error e;
	json_t *j;
	int r;

	r = uffsnap_client_execute_fds(s->client, command, arguments, pass, npass, ret_return, &e);
	if (r == -EREMOTEIO) {
		if (s->json) {
			j = json_pack("{s:{s:s, s:s}}", "error", "class", e.class, "desc", e.desc);
			cli_svc_print_json(j);
			json_decref(j);
		}
		fprintf(stderr, "%s: %s%s\n", s->inv->path, e.desc,
			cli_svc_class_hint(e.class, command));
		return CLI_EXIT_FAILURE;
	}
	if (r < 0) {
		cli_svc_connection_error(s, r);
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

int cli_svc_catch_signals(struct cli_svc *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return s->sigfd < 0 ? -errno : 0;
}

/* True if SIGINT or SIGTERM was read from the signalfd. */
static bool cli_svc_signalled(struct cli_svc *s)
{
	struct signalfd_siginfo si;

	return s->sigfd >= 0 && read(s->sigfd, &si, sizeof(si)) == sizeof(si);
}

int cli_svc_next_event(struct cli_svc *s, json_t **ret_event)
{
	struct pollfd p[2] = {{.fd = uffsnap_client_fd(s->client), .events = POLLIN},
			      {.fd = s->sigfd, .events = POLLIN}};
	int r;

	for (;;) {
		/* Events already read (e.g. during a command) do not make the socket readable. */
		r = uffsnap_client_next_event(s->client, 0, ret_event);
		if (r >= 0)
			return 0;
		if (r != -ETIMEDOUT) {
			cli_svc_connection_error(s, r);
			return CLI_EXIT_FAILURE;
		}
		if (cli_svc_signalled(s)) {
			*ret_event = NULL;
			return 0;
		}
		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			cli_svc_connection_error(s, -errno);
			return CLI_EXIT_FAILURE;
		}
	}
}

void cli_svc_close(struct cli_svc *s)
{
	sigset_t set;

	uffsnap_client_free(s->client);
	s->client = NULL;
	if (s->sigfd < 0)
		return;
	close(s->sigfd);
	s->sigfd = -EBADF;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_UNBLOCK, &set, NULL); /* a second Ctrl-C not yet read ends us now */
}

void cli_svc_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
}

int cli_svc_parse_job_id(struct cli_svc *s, const char *arg, json_int_t *ret_id)
{
	uint64_t v;

	if (cli_parse_u64(arg, &v) < 0 || v == 0 || v > INT64_MAX) {
		cli_usage_error(s->inv, "invalid job ID '%s' (a positive number)", arg);
		return -EINVAL;
	}
	*ret_id = (json_int_t)v;
	return 0;
}

int cli_svc_connect_qmp(struct cli_svc *s, const char *path, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char e[128];
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return cli_usage_error(s->inv, "--qemu %s: path too long for a unix socket", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		*ret_fd = fd;
		return CLI_EXIT_OK;
	}
	fprintf(stderr, "%s: cannot connect to the QMP socket %s: %s\n", s->inv->path, path,
		cli_strerror(-errno, e, sizeof(e)));
	if (fd >= 0)
		close(fd);
	return CLI_EXIT_FAILURE;
}
