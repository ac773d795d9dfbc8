/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "svc-main.h"

int svc_main(int argc, char **argv)
{
	fprintf(stderr, "uffsnapd: service mode is not implemented yet\n");
	return 2;
}
