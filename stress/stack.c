/*
 * stack: grow the main stack by megabytes, again and again.
 *
 * --procs workers each recurse on their main stack until it is about
 * --descent-mb deeper (a random depth between half and all of it), writing
 * every page of every frame top-down, so each fault lands just below the
 * stack VMA and goes through expand_downwards() one page at a time; the
 * frames are verified on the way back up.
 *
 * A stack VMA never shrinks by itself, so a second descent in the same
 * process would only fault on pages the VMA already covers.  After each
 * descent the worker therefore munmaps the part of its stack below its own
 * frame (splitting the VMA, which keeps VM_GROWSDOWN), and the next descent
 * expands it again.  Workers are forked from the root, so their stack VMAs
 * share the root's anon_vma tree.
 *
 * Every --exec-every descents a worker also fork()s and execve()s this
 * program in --grow-once mode: exec builds a fresh stack (setup_arg_pages,
 * the exec-time expand_stack path), grows it once, verifies and exits.
 *
 * Meanwhile --threads threads in every worker grow MAP_GROWSDOWN mappings
 * page by page (each fault below the VMA expands it, under the mmap write
 * lock the main thread's descent also wants) down to --grow-pages, with a
 * one-page neighbour mapped exactly one guard gap (the default 1 MiB) below
 * the lowest page, toggled between read-write and PROT_NONE: an accessible
 * neighbour is what the guard-gap check of expand_downwards() looks at.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define FRAME_BYTES (64 << 10)
#define TOUCH_BYTES 4096		/* smallest page size of any target */
#define FRAME_WORDS (FRAME_BYTES / 8)
#define TOUCH_WORDS (TOUCH_BYTES / 8)
#define MARK_TAG 0x6b70760000000000ull
/* Left mapped below a worker's own frame when the stack is cut back:
 * room for libc calls and signal frames. */
#define KEEP_BYTES (256 << 10)
/* Unmapped below the deepest frame too: the callees of the deepest frame
 * (and gcc's stack probes) touch a little below it. */
#define SLACK_BYTES (64 << 10)
#define MAX_PROCS 256
#define MAX_THREADS 64
#define GUARD_GAP (1ul << 20)	/* stack_guard_gap's default: 256 pages */
#define HOLE (8ul << 20)	/* reserved around one MAP_GROWSDOWN mapping */

enum { ST_DESCENT, ST_EXEC, ST_MUNMAP, ST_EXPANSIONS, ST_MAX_DEPTH, ST_GROWSDOWN,
       ST_GD_PAGES, ST_NEIGHBOURS, ST_MAX_THREADS };

static const struct kpv_stat stats[] = {
	[ST_DESCENT] = { "descent", KPV_OPS },
	[ST_EXEC] = { "exec", KPV_OPS },
	[ST_MUNMAP] = { "munmap", KPV_OPS },
	[ST_EXPANSIONS] = { "expansions", KPV_COUNT },
	[ST_MAX_DEPTH] = { "max_depth_kb", KPV_MAX },
	[ST_GROWSDOWN] = { "growsdown", KPV_OPS },	/* grow, verify, unmap cycles */
	[ST_GD_PAGES] = { "growsdown_pages", KPV_COUNT },	/* expanding faults */
	[ST_NEIGHBOURS] = { "neighbours_accessible", KPV_COUNT },
	[ST_MAX_THREADS] = { "max_threads", KPV_PEAK },	/* growing at once */
};

static long procs = 4, descent_mb = 4, exec_every = 4, grow_once;
static long threads = 2, grow_pages = 64;

static const struct kpv_option options[] = {
	{ "procs", &procs, "worker processes" },
	{ "descent-mb", &descent_mb, "deepest descent in MiB" },
	{ "exec-every", &exec_every, "fork+exec a grow-once copy every N descents (0: never)" },
	{ "grow-once", &grow_once, "1: grow the stack once and exit (used by the exec)" },
	{ "threads", &threads, "threads per worker growing MAP_GROWSDOWN mappings" },
	{ "grow-pages", &grow_pages, "pages each MAP_GROWSDOWN mapping grows by" },
};

struct descent {
	struct kpv_harness *h;
	char *top;		/* stack address the descent starts from */
	size_t target;		/* bytes to grow below top */
	char *lowest;		/* lowest frame reached */
};

static uint64_t mark(uint64_t level, size_t word)
{
	return MARK_TAG | (level << 24) | word;
}

static __attribute__((noinline)) void descend(struct descent *d, uint64_t level)
{
	volatile uint64_t frame[FRAME_WORDS];

	/* Top-down, so every fault is one page below the VMA. */
	for (size_t w = FRAME_WORDS; w >= TOUCH_WORDS; w -= TOUCH_WORDS)
		frame[w - TOUCH_WORDS] = mark(level, w - TOUCH_WORDS);
	if ((char *)frame < d->lowest)
		d->lowest = (char *)frame;
	if ((size_t)(d->top - (char *)frame) < d->target)
		descend(d, level + 1);
	for (size_t w = 0; w < FRAME_WORDS; w += TOUCH_WORDS)
		if (frame[w] != mark(level, w))
			kpv_check_fail(d->h, (const void *)&frame[w],
				       mark(level, w), frame[w]);
}

/* One descent below top; returns the lowest frame address reached. */
static char *grow(struct kpv_harness *h, char *top, size_t target)
{
	struct descent d = { h, top, target, top };

	descend(&d, 0);
	kpv_add(h, ST_EXPANSIONS, 1);
	kpv_max(h, ST_MAX_DEPTH, (uint64_t)(top - d.lowest) >> 10);
	return d.lowest;
}

/* Cut the stack VMA back to just below top, so the next descent expands it
 * again.  The guard gap keeps any other mapping out of the slack below. */
static void shrink(struct kpv_harness *h, char *top, char *lowest)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)lowest & ~(page - 1)) - SLACK_BYTES;
	uintptr_t hi = (((uintptr_t)top) & ~(page - 1)) - KEEP_BYTES;

	if (hi <= lo)
		return;
	if (munmap((void *)lo, hi - lo))
		kpv_errno(h, errno);
	else
		kpv_add(h, ST_MUNMAP, 1);
}

static int wait_ok(struct kpv_harness *h, pid_t pid, const char *what)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			kpv_errno(h, errno);
			return 0;
		}
	if (WIFSIGNALED(status))
		kpv_fail(h, "%s (pid %d) killed by signal %d", what, pid,
			 WTERMSIG(status));
	else if (WEXITSTATUS(status))
		kpv_fail(h, "%s (pid %d) exited with status %d", what, pid,
			 WEXITSTATUS(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void exec_once(struct kpv_harness *h)
{
	char mb[24], seed[24];
	char *args[] = { "stack", "--grow-once", "1", "--descent-mb", mb,
			 "--seed", seed, NULL };
	pid_t pid;

	snprintf(mb, sizeof(mb), "%ld", descent_mb);
	snprintf(seed, sizeof(seed), "%ld", h->seed);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* survives execve */
		execv("/proc/self/exe", args);
		fprintf(stderr, "stack: exec /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	if (pid < 0) {
		kpv_errno(h, errno);
		return;
	}
	if (wait_ok(h, pid, "grow-once exec")) {
		kpv_add(h, ST_EXEC, 1);
		kpv_add(h, ST_EXPANSIONS, 1);
	}
}

static size_t pick_target(struct kpv_rng *rng)
{
	size_t full = (size_t)descent_mb << 20;

	return full / 2 + kpv_rng_below(rng, full / 2 + 1);
}

/* One cycle: a reserved hole, a one-page GROWSDOWN mapping at its top, the
 * neighbour one guard gap below the lowest page, growth, checks, unmap. */
static void growsdown_cycle(struct kpv_harness *h, uint64_t mark, int accessible)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *hole = mmap(NULL, HOLE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
			  MAP_NORESERVE, -1, 0);
	char *top, *lowest, *neighbour;

	if (hole == MAP_FAILED) {
		kpv_errno(h, errno);
		return;
	}
	top = hole + HOLE - page;
	lowest = top - grow_pages * page;
	neighbour = lowest - GUARD_GAP - page;
	/* The growth area and the gap must be unmapped (a PROT_NONE mapping
	 * there would take the faults); below the neighbour stays reserved. */
	if (munmap(neighbour + page, (size_t)(top - neighbour - page)) ||
	    mmap(top, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_GROWSDOWN | MAP_FIXED, -1, 0) == MAP_FAILED ||
	    mmap(neighbour, page, accessible ? PROT_READ | PROT_WRITE : PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		kpv_errno(h, errno);
		munmap(hole, HOLE);
		return;
	}
	kpv_add(h, ST_NEIGHBOURS, (uint64_t)accessible);
	for (long k = 0; k <= grow_pages; k++)	/* top-down: each one expands */
		kpv_page_sign(top - k * page, page, (uint64_t)k, mark);
	for (long k = 0; k <= grow_pages; k++)
		kpv_page_check(h, top - k * page, page, (uint64_t)k, mark);
	kpv_add(h, ST_GD_PAGES, (uint64_t)grow_pages);
	if (munmap(hole, HOLE))
		kpv_errno(h, errno);
	kpv_add(h, ST_GROWSDOWN, 1);
}

struct grower {
	struct kpv_harness *h;
	uint64_t id;
};

static void *grower_main(void *arg)
{
	struct grower *g = arg;

	kpv_level(g->h, ST_MAX_THREADS, 1);
	for (uint64_t n = 1; kpv_running(g->h); n++)
		growsdown_cycle(g->h, (g->id << 32) | n, (int)(n & 1));
	kpv_level(g->h, ST_MAX_THREADS, -1);
	return NULL;
}

static void worker(struct kpv_harness *h, uint64_t id)
{
	char here;
	char *top = &here;
	struct kpv_rng rng;
	pthread_t tids[MAX_THREADS];
	struct grower growers[MAX_THREADS];

	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* die with the root */
	kpv_rng_init(&rng, (uint64_t)h->seed, id);
	for (long k = 0; k < threads; k++) {
		growers[k] = (struct grower){ h, id * MAX_THREADS + (uint64_t)k + 1 };
		if (pthread_create(&tids[k], NULL, grower_main, &growers[k]))
			kpv_fail(h, "pthread_create failed");
	}
	for (long n = 1; kpv_running(h); n++) {
		shrink(h, top, grow(h, top, pick_target(&rng)));
		kpv_add(h, ST_DESCENT, 1);
		if (exec_every > 0 && n % exec_every == 0)
			exec_once(h);
	}
	for (long k = 0; k < threads; k++)
		pthread_join(tids[k], NULL);
	_exit(0);
}

/* The whole descent must fit in RLIMIT_STACK with room to spare, or the
 * kernel refuses the growth and the worker dies of SIGSEGV. */
static int fits_rlimit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_STACK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return 1;
	return ((rlim_t)descent_mb << 20) + (1 << 20) <= rl.rlim_cur;
}

int main(int argc, char **argv)
{
	struct kpv_harness h;
	pid_t pids[MAX_PROCS];
	char here;

	kpv_init(&h, "stack", argc, argv, options,
		 sizeof(options) / sizeof(options[0]), stats,
		 sizeof(stats) / sizeof(stats[0]));
	if (procs < 1 || procs > MAX_PROCS || descent_mb < 1 || !fits_rlimit() ||
	    threads < 0 || threads > MAX_THREADS || grow_pages < 1 ||
	    (grow_pages + 2) * 4096 + GUARD_GAP > HOLE) {
		fprintf(stderr, "stack: need 1 <= procs <= %d, descent-mb >= 1 "
			"at least 1 MiB below RLIMIT_STACK, 0 <= threads <= %d "
			"and 1 <= grow-pages <= 1500\n", MAX_PROCS, MAX_THREADS);
		return 2;
	}
	if (grow_once) {
		grow(&h, &here, (size_t)descent_mb << 20);
		return h.shared->check_failures ? 1 : 0;
	}
	for (long k = 0; k < procs; k++) {
		pids[k] = fork();
		if (pids[k] == 0)
			worker(&h, (uint64_t)k);
		if (pids[k] < 0)
			kpv_errno(&h, errno);
	}
	for (long k = 0; k < procs; k++)
		if (pids[k] > 0)
			wait_ok(&h, pids[k], "worker");
	return kpv_finish(&h);
}
