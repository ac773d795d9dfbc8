/* SPDX-License-Identifier: MIT */
/* uffsnapctl image info: an incremental image's chain (its parents), as text and as JSON. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "cli-image.h"

struct info_chain {
	bool incremental;    /* the image is: its chain is part of the answer */
	struct img_chain *c; /* NULL if it could not be opened */
	char error[256];     /* why not; "" if it was not looked up (a pipe) */
};

/* Opens img's chain when it is incremental; a failure is kept in ic->error, not printed. */
void info_chain_load(struct info_chain *ic, const struct cli_image *img, const char *parent,
		     uint32_t flags);
void info_chain_free(struct info_chain *ic);

/* "parent:", "chain:" and one "link N:" line per image (nothing for a full image). */
void info_chain_print(const struct info_chain *ic, const json_t *meta);

/* Adds "chain" (an array of links) and the chain's page counts, or "chain_error", to o. */
void info_chain_json(const struct info_chain *ic, json_t *o);
