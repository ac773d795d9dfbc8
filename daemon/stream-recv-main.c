/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "stream-main.h"

int recv_main(int argc, char **argv)
{
	fprintf(stderr, "uffsnapd: receiver mode is not implemented yet\n");
	return 2;
}
