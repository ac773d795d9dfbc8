/* SPDX-License-Identifier: MIT */
/*
 * A program whose state at any instant is known, for the core file tests: globals and a heap
 * block with fixed patterns; three workers parked inside read(2) on a pipe nobody writes, at
 * a known call depth with known locals; a thread holding known values in ymm8 and ymm9 while
 * it sits in read(2) (a raw syscall, so no library code touches them); a thread counting
 * (progress, so a test can see it kept running); and main in pause(2).
 * Prints "ready PID HEAP WORKER_TIDS... AVX_TID PROGRESS_TID" once every thread is in place.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKERS	   3
#define HEAP_WORDS (1u << 17) /* 1 MiB */

uint64_t g_magic = 0x1122334455667788ull;
char g_pattern[32] = "uffsnap-core-global";
uint64_t *g_heap;
volatile uint64_t g_counter;
static int g_pipe[2];
static pid_t g_tids[WORKERS + 2];
static pthread_barrier_t g_ready;
/* ymm8 = {1, 2, 3, 4}, ymm9 = {0x1111..., 0x2222..., 0x3333..., 0x4444...} (64-bit lanes). */
static const uint64_t g_ymm8[4] = {1, 2, 3, 4};
static const uint64_t g_ymm9[4] = {0x1111111111111111ull, 0x2222222222222222ull,
				   0x3333333333333333ull, 0x4444444444444444ull};

/* Recurses n more times, then blocks; "mark" is each frame's known local. */
__attribute__((noinline)) static uint64_t level(int tag, int n)
{
	volatile uint64_t mark = 0xabc000 + (uint64_t)tag * 16 + (uint64_t)n;
	char c;

	if (n > 0)
		return level(tag, n - 1) + mark;
	pthread_barrier_wait(&g_ready);
	return (uint64_t)read(g_pipe[0], &c, 1) + mark; /* never returns */
}

static void *worker(void *arg)
{
	int tag = (int)(intptr_t)arg;

	g_tids[tag] = (pid_t)syscall(SYS_gettid);
	level(tag, tag + 2); /* worker 0 at depth 3, 1 at 4, 2 at 5 */
	return NULL;
}

static void *avx_thread(void *arg)
{
	char c;
	long r;

	(void)arg;
	g_tids[WORKERS] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&g_ready);
	__asm__ volatile("vmovdqu %1, %%ymm8\n\t"
			 "vmovdqu %2, %%ymm9\n\t"
			 "syscall"
			 : "=a"(r)
			 : "m"(g_ymm8), "m"(g_ymm9), "a"((long)SYS_read), "D"((long)g_pipe[0]),
			   "S"(&c), "d"(1L)
			 : "rcx", "r11", "memory", "xmm8", "xmm9");
	return (void *)r;
}

static void *progress(void *arg)
{
	(void)arg;
	g_tids[WORKERS + 1] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&g_ready);
	for (;;) {
		g_counter++;
		usleep(1000);
	}
	return NULL;
}

int main(void)
{
	pthread_t th;

	if (pipe(g_pipe) < 0 || !(g_heap = malloc(HEAP_WORDS * sizeof(uint64_t))))
		return 1;
	for (uint64_t i = 0; i < HEAP_WORDS; i++)
		g_heap[i] = 0x5eed000000000000ull | i * 7;
	pthread_barrier_init(&g_ready, NULL, WORKERS + 3);
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&th, NULL, worker, (void *)(intptr_t)i);
	pthread_create(&th, NULL, avx_thread, NULL);
	pthread_create(&th, NULL, progress, NULL);
	pthread_barrier_wait(&g_ready);
	printf("ready %d %p", (int)getpid(), (void *)g_heap);
	for (int i = 0; i < WORKERS + 2; i++)
		printf(" %d", (int)g_tids[i]);
	printf("\n");
	fflush(stdout);
	for (;;)
		pause();
}
