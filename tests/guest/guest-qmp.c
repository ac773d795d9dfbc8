// SPDX-License-Identifier: MIT
/* The tests' QMP conveniences (guest-harness.h) over the project's QMP client (proto/qmp.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest-harness.h"
#include "qmp.h"
#include "test-check.h"

int guest_qmp_open(const struct guest *g, unsigned timeout_s, struct qmp **ret, char *why,
		   size_t why_len)
{
	int r = -ETIMEDOUT;

	/* QEMU creates its socket a moment after it starts: until then connecting fails */
	for (unsigned i = 0; i < timeout_s * 20; i++) {
		r = qmp_open_path(g->qmp_path, (int)timeout_s * 1000, ret, why, why_len);
		if (r != -ENOENT && r != -ECONNREFUSED)
			return r;
		test_sleep_ms(50);
	}
	return r;
}

int guest_qmp(struct qmp *q, const char *cmd, json_t *args, int fd, json_t **ret, char *why,
	      size_t why_len)
{
	int r = qmp_exec(q, cmd, args, fd, ret, why, why_len);

	json_decref(args);
	return r;
}

int guest_qmp_caps(struct qmp *q, const char *const *names, bool on, char *why, size_t why_len)
{
	json_t *caps = json_array();

	for (; *names; names++)
		json_array_append_new(caps, json_pack("{s:s,s:b}", "capability", *names,
						      "state", on));
	return guest_qmp(q, "migrate-set-capabilities", json_pack("{s:o}", "capabilities", caps),
			 -1, NULL, why, why_len);
}

int guest_qmp_wait_migration(struct qmp *q, unsigned timeout_s, char *why, size_t why_len)
{
	for (;;) {
		json_t *ev = NULL;
		const char *st;
		int r = qmp_wait_event(q, "MIGRATION", (int)timeout_s * 1000, &ev, why, why_len);

		if (r < 0)
			return r;
		st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
		r = !st ? -EPROTO : !strcmp(st, "completed") ? 0 : !strcmp(st, "failed") ? -EIO : 1;
		if (r < 0)
			snprintf(why, why_len, "migration %s", st ? st : "status missing");
		json_decref(ev);
		if (r <= 0)
			return r;
	}
}

int guest_qmp_cont(struct qmp *q, char *why, size_t why_len)
{
	int r = qmp_exec(q, "cont", NULL, -1, NULL, why, why_len);

	if (r == -EREMOTEIO && strstr(why, "Migration is not finalized yet")) {
		printf("cont refused once (%s): retrying\n", why);
		r = qmp_exec(q, "cont", NULL, -1, NULL, why, why_len);
	}
	return r;
}
