/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/snap.h"
#include "engine/unseen.h"

int unseen_note(struct snap *s, const char *why, json_t *members)
{
	json_t *ev = json_pack("{s:s, s:s}", "event", "may-not-be-exact", "why", why);
	char *text = NULL;
	int k = -ENOMEM;

	if (ev && members)
		json_object_update(ev, members);
	json_decref(members);
	if (ev)
		text = json_dumps(ev, JSON_COMPACT);
	if (text)
		k = img_writer_event(s->w, text, strlen(text));
	free(text);
	json_decref(ev);
	return k;
}

json_t *unseen_addr(uint64_t addr)
{
	char hex[24];

	snprintf(hex, sizeof(hex), "0x%" PRIx64, addr);
	return json_string(hex);
}
