/*
 * race: the combinations that found the real anon_vma bugs, in one run.
 *
 * The root maps and marks a private anonymous region R, then forks --width
 * churners: all of them share R's pages and its root anon_vma.  Everybody
 * meets at a barrier (in shared memory) at the start of every round of
 * --burst-ms, so both sides run at the same time; the root is pinned to
 * CPU 0 and the churners to the other CPUs (all on CPU 0 with one vCPU).
 *
 * In each round the root walks the root anon_vma from outside the churners'
 * mms: move_pages(MPOL_MF_MOVE_ALL) of R's pages, which every churner may
 * still map, to the next node; migrate_pages() of one churner; and every
 * --compact-ms a write to /proc/sys/vm/compact_memory (a walker that holds
 * no mmap_lock at all).  Meanwhile each churner changes its VMAs under the
 * walkers: mprotect split and merge, mremap away and back, munmap plus
 * MAP_FIXED, COW writes, a MAP_GROWSDOWN mapping grown page by page down
 * to --stack-pages, and a short-lived child that recurses on its stack.
 * Every step is verified; a round in which both sides did work counts as an
 * overlap.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "range.h"
#include "numa.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MAX_WIDTH 64
#define MAX_BATCH 512
#define HOLE (8ul << 20)	/* room below a MAP_GROWSDOWN mapping */
#define RECURSE_FRAME 4096

enum {
	ST_MOVE, ST_MIGRATE, ST_COMPACT, ST_MPROTECT, ST_MREMAP, ST_REMAP,
	ST_COW, ST_GROWSDOWN, ST_FORK, ST_MOVED, ST_ROUNDS, ST_OVERLAP,
	ST_GROWN_PAGES, ST_MAX_PROCS, ST_NODES, ST_VERIFY,
};

static const struct kpv_stat stats[] = {
	[ST_MOVE] = { "move_pages", KPV_OPS },		/* calls (walker) */
	[ST_MIGRATE] = { "migrate_pages", KPV_OPS },	/* calls (walker) */
	[ST_COMPACT] = { "compact", KPV_OPS },		/* writes (walker) */
	[ST_MPROTECT] = { "mprotect", KPV_OPS },	/* split + merge */
	[ST_MREMAP] = { "mremap", KPV_OPS },		/* away + back */
	[ST_REMAP] = { "remap", KPV_OPS },		/* munmap + MAP_FIXED */
	[ST_COW] = { "cow", KPV_OPS },
	[ST_GROWSDOWN] = { "growsdown", KPV_OPS },	/* grow, verify, unmap */
	[ST_FORK] = { "fork", KPV_OPS },		/* short-lived recursing child */
	[ST_MOVED] = { "mp_moved", KPV_COUNT },		/* pages with status == target */
	[ST_ROUNDS] = { "rounds", KPV_COUNT },
	[ST_OVERLAP] = { "overlap_rounds", KPV_COUNT },	/* both sides worked */
	[ST_GROWN_PAGES] = { "stack_expansions", KPV_COUNT },	/* faults below the VMA */
	[ST_MAX_PROCS] = { "max_procs", KPV_PEAK },
	[ST_NODES] = { "nodes", KPV_MAX },
	[ST_VERIFY] = { "verify", KPV_COUNT },
};

static const struct kpv_counter counters[] = {
	{ "vm_pgmigrate_success", "/proc/vmstat", "pgmigrate_success" },
	{ "vm_pgmigrate_fail", "/proc/vmstat", "pgmigrate_fail" },
	{ "vm_compact_migrate_scanned", "/proc/vmstat", "compact_migrate_scanned" },
	{ "vm_compact_isolated", "/proc/vmstat", "compact_isolated" },
};

static long size_mb = 4, width = 4, burst_ms = 200, stack_pages = 32;
static long compact_ms = 300, batch = 256, corrupt;

static const struct kpv_option options[] = {
	{ "size-mb", &size_mb, "shared region R in MiB" },
	{ "width", &width, "churner processes" },
	{ "burst-ms", &burst_ms, "length of one round between barriers" },
	{ "stack-pages", &stack_pages, "pages a MAP_GROWSDOWN mapping grows by" },
	{ "compact-ms", &compact_ms, "ms between compact_memory writes (0: never)" },
	{ "batch", &batch, "pages per move_pages call" },
	{ "corrupt", &corrupt, "1: damage one page to prove the check works" },
};

/* In shared memory: the round barrier and each side's work per round. */
struct shared {
	uint32_t arrived;
	uint32_t generation;
	uint64_t walker_work;
	uint64_t churn_work;
};

struct race {
	struct kpv_range range;	/* R */
	struct shared *sh;
	int nodes;
	pid_t churners[MAX_WIDTH];
};

/*
 * Everybody waits for the last arrival, then all start together.  A waiter
 * gives up at the deadline, so a dead churner cannot hang the others.
 */
static int barrier(struct kpv_harness *h, struct shared *sh, uint32_t parties)
{
	uint32_t gen = __atomic_load_n(&sh->generation, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&sh->arrived, 1, __ATOMIC_ACQ_REL) == parties) {
		__atomic_store_n(&sh->arrived, 0, __ATOMIC_RELAXED);
		__atomic_add_fetch(&sh->generation, 1, __ATOMIC_RELEASE);
		return 1;
	}
	while (__atomic_load_n(&sh->generation, __ATOMIC_ACQUIRE) == gen) {
		if (!kpv_running(h))
			return 0;
		usleep(100);
	}
	return 1;
}

/* --- churner side ------------------------------------------------------ */

static void churn_mprotect(struct kpv_harness *h, struct kpv_range *r,
			   size_t first, size_t n)
{
	char *addr = kpv_range_page(r, first);

	if (mprotect(addr, n * r->page, PROT_READ) ||
	    mprotect(addr, n * r->page, PROT_READ | PROT_WRITE)) {
		kpv_errno(h, errno);
		return;
	}
	kpv_range_check(h, r, first, n);
	kpv_add(h, ST_MPROTECT, 1);
}

static void churn_mremap(struct kpv_harness *h, struct kpv_range *r,
			 size_t first)
{
	/* One page: always inside one VMA, which 6.1's mremap needs. */
	int err = kpv_range_move_back(h, r, first, 1);

	if (err) {
		kpv_errno(h, err);
		return;
	}
	kpv_add(h, ST_MREMAP, 1);
}

static void churn_remap(struct kpv_harness *h, struct kpv_range *r,
			size_t first, size_t n, uint64_t mark)
{
	int err = kpv_range_remap(h, r, first, n, mark);

	if (err) {
		kpv_errno(h, err);
		return;
	}
	kpv_add(h, ST_REMAP, 1);
}

/* A one-page MAP_GROWSDOWN mapping at the top of an empty hole, grown one
 * page per fault (expand_downwards), verified, then unmapped. */
static void churn_growsdown(struct kpv_harness *h, const struct kpv_range *r,
			    uint64_t mark)
{
	char *hole = mmap(NULL, HOLE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
			  MAP_NORESERVE, -1, 0);
	char *top;

	if (hole == MAP_FAILED) {
		kpv_errno(h, errno);
		return;
	}
	munmap(hole, HOLE);
	top = hole + HOLE - r->page;
	if (mmap(top, r->page, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		 MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE, -1,
		 0) != top) {
		kpv_errno(h, errno);
		return;
	}
	for (long k = 0; k <= stack_pages; k++)
		kpv_page_sign(top - k * r->page, r->page, (uint64_t)k, mark);
	for (long k = 0; k <= stack_pages; k++)
		kpv_page_check(h, top - k * r->page, r->page, (uint64_t)k, mark);
	kpv_add(h, ST_GROWN_PAGES, (uint64_t)stack_pages);
	if (munmap(top - stack_pages * r->page, (size_t)(stack_pages + 1) * r->page))
		kpv_errno(h, errno);
	kpv_add(h, ST_GROWSDOWN, 1);
}

static __attribute__((noinline)) uint64_t recurse(int depth)
{
	volatile uint64_t frame[RECURSE_FRAME / 8];

	for (size_t w = 0; w < RECURSE_FRAME / 8; w += 64)
		frame[w] = (uint64_t)depth;
	return depth ? recurse(depth - 1) + frame[0] : frame[0];
}

/* A child that grows its copy of the stack and COW-writes R, then exits. */
static void churn_fork(struct kpv_harness *h, struct kpv_range *r, size_t first)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		recurse(64);	/* 256 KiB below the inherited frames */
		kpv_range_sign(r, first, 1, 0xc0ffee);
		kpv_range_check(h, r, first, 1);
		_exit(0);
	}
	if (pid < 0) {
		kpv_errno(h, errno);
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		kpv_fail(h, "short-lived child %d ended with status %#x", pid, status);
	kpv_add(h, ST_FORK, 1);
}

static void churner(struct kpv_harness *h, struct race *rc, uint64_t id)
{
	struct kpv_range *r = &rc->range;
	struct kpv_rng rng;
	uint64_t step = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	kpv_level(h, ST_MAX_PROCS, 1);
	kpv_pin(kpv_ncpus() > 1 ? 1 + (int)(id % (uint64_t)(kpv_ncpus() - 1)) : 0);
	kpv_rng_init(&rng, (uint64_t)h->seed, id + 1);
	while (barrier(h, rc->sh, (uint32_t)width + 1)) {
		uint64_t end = kpv_now_ns() + (uint64_t)burst_ms * 1000000ull;

		while (kpv_now_ns() < end && kpv_running(h)) {
			size_t n = 1 + kpv_rng_below(&rng, 8);
			size_t first = kpv_rng_below(&rng, r->npages - n);
			uint64_t mark = ((id + 1) << 40) | ++step;

			switch (kpv_rng_below(&rng, 6)) {
			case 0: churn_mprotect(h, r, first, n); break;
			case 1: churn_mremap(h, r, first); break;
			case 2: churn_remap(h, r, first, n, mark); break;
			case 3: churn_growsdown(h, r, mark); break;
			case 4: churn_fork(h, r, first); break;
			default:
				kpv_range_sign(r, first, 1, mark);
				kpv_range_check(h, r, first, 1);
				kpv_add(h, ST_COW, 1);
			}
			__atomic_add_fetch(&rc->sh->churn_work, 1, __ATOMIC_RELAXED);
		}
	}
	if (corrupt && id == 0)	/* just before the last check: it must see it */
		kpv_range_page(r, r->npages / 2)[8] ^= 1;
	kpv_range_check(h, r, 0, r->npages);
	kpv_level(h, ST_MAX_PROCS, -1);
	_exit(0);
}

/* --- walker side (the root) -------------------------------------------- */

static void walk_move_pages(struct kpv_harness *h, const struct kpv_range *r,
			    struct kpv_rng *rng, int node)
{
	static void *pages[MAX_BATCH];
	static int nodes[MAX_BATCH], status[MAX_BATCH];
	static size_t index[MAX_BATCH];

	for (long k = 0; k < batch; k++) {
		index[k] = kpv_rng_below(rng, r->npages);
		pages[k] = kpv_range_page(r, index[k]);
		nodes[k] = node;
		status[k] = -1000000;
	}
	if (kpv_move_pages(0, (unsigned long)batch, pages, nodes, status,
			   KPV_MPOL_MF_MOVE_ALL) < 0)
		kpv_errno(h, errno);
	for (long k = 0; k < batch; k++) {
		if (status[k] == node)
			kpv_add(h, ST_MOVED, 1);
		kpv_page_check(h, pages[k], r->page, index[k], r->expect[index[k]]);
	}
	kpv_add(h, ST_VERIFY, (uint64_t)batch);
	kpv_add(h, ST_MOVE, 1);
}

static void walker(struct kpv_harness *h, struct race *r)
{
	struct kpv_rng rng;
	uint64_t next_compact = 0, step = 0;
	unsigned long all = (1ul << r->nodes) - 1;

	kpv_pin(0);
	kpv_rng_init(&rng, (uint64_t)h->seed, 0);
	while (barrier(h, r->sh, (uint32_t)width + 1)) {
		uint64_t end = kpv_now_ns() + (uint64_t)burst_ms * 1000000ull;
		uint64_t churned = __atomic_load_n(&r->sh->churn_work, __ATOMIC_RELAXED);
		uint64_t walked = 0;

		while (kpv_now_ns() < end && kpv_running(h)) {
			int node = (int)(++step % (uint64_t)r->nodes);

			if (step % 4) {
				walk_move_pages(h, &r->range, &rng, node);
			} else {
				pid_t pid = r->churners[kpv_rng_below(&rng, (uint64_t)width)];

				if (pid > 0 && kpv_migrate_pages(pid, all, 1ul << node) < 0)
					kpv_errno(h, errno);
				kpv_add(h, ST_MIGRATE, 1);
			}
			walked++;
			if (compact_ms > 0 && kpv_now_ns() >= next_compact) {
				int err = kpv_write_file("/proc/sys/vm/compact_memory", "1");

				next_compact = kpv_now_ns() + (uint64_t)compact_ms * 1000000ull;
				if (err)
					kpv_errno(h, err);
				else
					kpv_add(h, ST_COMPACT, 1);
			}
		}
		kpv_add(h, ST_ROUNDS, 1);
		if (walked && __atomic_load_n(&r->sh->churn_work, __ATOMIC_RELAXED) > churned)
			kpv_add(h, ST_OVERLAP, 1);
	}
}

static void setup(struct kpv_harness *h, struct race *r)
{
	int err = kpv_range_map(&r->range, (size_t)size_mb << 20, ST_VERIFY);

	r->nodes = kpv_nodes();
	kpv_max(h, ST_NODES, (uint64_t)r->nodes);
	r->sh = mmap(NULL, sizeof(*r->sh), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!err && r->sh == MAP_FAILED)
		err = errno;
	if (err) {
		fprintf(stderr, "race: setup: %s\n", strerror(err));
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct kpv_harness h;
	static struct race r;

	kpv_init(&h, "race", argc, argv, options,
		 sizeof(options) / sizeof(options[0]), stats,
		 sizeof(stats) / sizeof(stats[0]));
	if (size_mb < 1 || width < 1 || width > MAX_WIDTH || burst_ms < 1 ||
	    stack_pages < 1 || (size_t)stack_pages << 12 > HOLE / 2 ||
	    batch < 1 || batch > MAX_BATCH) {
		fprintf(stderr, "race: need size-mb >= 1, 1 <= width <= %d, "
			"burst-ms >= 1, 1 <= stack-pages <= 1024, "
			"1 <= batch <= %d\n", MAX_WIDTH, MAX_BATCH);
		return 2;
	}
	kpv_counters(&h, counters, sizeof(counters) / sizeof(counters[0]));
	setup(&h, &r);
	kpv_level(&h, ST_MAX_PROCS, 1);
	for (long k = 0; k < width; k++) {
		r.churners[k] = fork();
		if (r.churners[k] == 0)
			churner(&h, &r, (uint64_t)k);
		if (r.churners[k] < 0)
			kpv_errno(&h, errno);
	}
	walker(&h, &r);
	for (long k = 0; k < width; k++) {
		int status;

		if (r.churners[k] <= 0)
			continue;
		while (waitpid(r.churners[k], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			kpv_fail(&h, "churner %d ended with status %#x",
				 r.churners[k], status);
	}
	kpv_range_check(&h, &r.range, 0, r.range.npages);
	return kpv_finish(&h);
}
