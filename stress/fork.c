/*
 * fork: trees of processes that COW-share written anonymous memory.
 *
 * The root maps a private anonymous region and writes a mark into every page
 * (index and owner, at both ends of the page).  Each round it forks a tree of
 * --width children per node, --depth levels deep.  Every node verifies what
 * it inherited, COW-writes its own mark into --cow-pct percent of the pages,
 * verifies again, forks its children, and after they exit verifies once more:
 * a child's private write must never show in its parent.  Pages written at
 * level k live in level-k anon_vmas and stay mapped in all descendants, so
 * dup_mmap, anon_vma_fork, COW faults and unlink_anon_vmas all run on one
 * deep anon_vma tree.
 *
 * Rounds take turns between three shapes:
 *   deep   --width children per node, --depth levels;
 *   wide   --wide children of the root at once, all alive together (the
 *          AIM7-like width: one root anon_vma with that many children);
 *   relay  a chain of --relay generations: each one verifies, COW-writes,
 *          splits and merges a VMA with mprotect, forks the next and exits,
 *          so the root anon_vma outlives the processes that made it (the
 *          anon_vma reuse path); the root reaps them as a subreaper.
 * --wide 0 or --relay 0 leaves that shape out.
 *
 * The expected mark of every page is kept in a private heap array, which each
 * child inherits through fork() like the region itself.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Tags the index word so a zero-filled page never looks valid. */
#define INDEX_TAG 0x6b70760000000000ull
#define MAX_WIDTH 512
#define MAX_TREE 10000		/* processes in one tree */

enum { ST_FORK, ST_VERIFY, ST_COW, ST_MAX_PROCS, ST_ROUNDS, ST_RELAY, ST_WIDE };

static const struct kpv_stat stats[] = {
	[ST_FORK] = { "fork", KPV_OPS },
	[ST_VERIFY] = { "verify", KPV_COUNT },	/* pages checked: not an op */
	[ST_COW] = { "cow", KPV_OPS },		/* pages written */
	[ST_MAX_PROCS] = { "max_procs", KPV_PEAK },
	[ST_ROUNDS] = { "rounds", KPV_COUNT },
	[ST_RELAY] = { "relay_generations", KPV_COUNT },
	[ST_WIDE] = { "wide_rounds", KPV_COUNT },
};

static long size_mb = 8, width = 8, depth = 2, cow_pct = 10, corrupt;
static long wide = 32, relay = 8;

static const struct kpv_option options[] = {
	{ "size-mb", &size_mb, "anonymous region in MiB" },
	{ "width", &width, "children of every node" },
	{ "depth", &depth, "levels below the root" },
	{ "cow-pct", &cow_pct, "percent of pages each process writes" },
	{ "wide", &wide, "children of the root in wide rounds (0: none)" },
	{ "relay", &relay, "generations of a relay chain (0: none)" },
	{ "corrupt", &corrupt, "1: damage one page to prove the check works" },
};

struct tree {
	char *region;
	size_t npages;
	size_t page_size;
	uint64_t *expect;	/* per page: the mark this process must see */
	uint64_t round;
	uint64_t *gate;		/* shared: children of a wide round that started */
	long gate_target;	/* in a wide round: wait until all are there */
};

static uint64_t *page_words(const struct tree *t, size_t i)
{
	return (uint64_t *)(t->region + i * t->page_size);
}

static uint64_t *page_tail(const struct tree *t, size_t i)
{
	return (uint64_t *)(t->region + (i + 1) * t->page_size) - 2;
}

static void write_mark(struct tree *t, size_t i, uint64_t mark)
{
	uint64_t *head = page_words(t, i), *tail = page_tail(t, i);

	head[0] = tail[0] = i | INDEX_TAG;
	head[1] = tail[1] = mark;
	t->expect[i] = mark;
}

static void check_word(struct kpv_harness *h, const uint64_t *word,
		       uint64_t expected)
{
	if (*word != expected)
		kpv_check_fail(h, word, expected, *word);
}

static void verify(struct kpv_harness *h, const struct tree *t)
{
	for (size_t i = 0; i < t->npages; i++) {
		const uint64_t *head = page_words(t, i), *tail = page_tail(t, i);

		check_word(h, &head[0], i | INDEX_TAG);
		check_word(h, &head[1], t->expect[i]);
		check_word(h, &tail[0], i | INDEX_TAG);
		check_word(h, &tail[1], t->expect[i]);
	}
	kpv_add(h, ST_VERIFY, t->npages);
}

static void cow_marks(struct kpv_harness *h, struct tree *t, uint64_t id)
{
	size_t n = t->npages * (size_t)cow_pct / 100;
	uint64_t mark = ((t->round + 1) << 32) | id;	/* never 0 */
	struct kpv_rng rng;

	kpv_rng_init(&rng, (uint64_t)h->seed, (t->round << 32) | id);
	for (size_t k = 0; k < n; k++)
		write_mark(t, kpv_rng_below(&rng, t->npages), mark);
	kpv_add(h, ST_COW, n);
}

static void run_node(struct kpv_harness *h, struct tree *t, uint64_t id,
		     long level);

static void child_main(struct kpv_harness *h, struct tree *t, uint64_t id,
		       long level)
{
	/* When init's timeout kills the root, the whole tree must go too. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	kpv_level(h, ST_MAX_PROCS, 1);
	if (t->gate_target)
		__atomic_add_fetch(t->gate, 1, __ATOMIC_RELAXED);
	run_node(h, t, id, level);
	/* A wide round's children stay until all their siblings exist, so the
	 * root anon_vma really has that many children at once. */
	while (t->gate_target && kpv_running(h) &&
	       __atomic_load_n(t->gate, __ATOMIC_RELAXED) < (uint64_t)t->gate_target)
		usleep(1000);
	kpv_level(h, ST_MAX_PROCS, -1);
	_exit(0);
}

static void reap(struct kpv_harness *h, pid_t pid, uint64_t id)
{
	char who[32];

	snprintf(who, sizeof(who), "node %llu", (unsigned long long)id);
	kpv_reap(h, pid, who);
}

static void fork_children(struct kpv_harness *h, struct tree *t, uint64_t id,
			  long level, long width)
{
	pid_t pids[MAX_WIDTH];

	for (long k = 0; k < width; k++) {
		uint64_t child = id * (uint64_t)width + (uint64_t)k + 1;

		pids[k] = fork();
		if (pids[k] == 0)
			child_main(h, t, child, level + 1);
		if (pids[k] < 0)
			kpv_errno(h, errno);
		else
			kpv_add(h, ST_FORK, 1);
	}
	for (long k = 0; k < width; k++)
		if (pids[k] > 0)
			reap(h, pids[k], id * (uint64_t)width + (uint64_t)k + 1);
}

static void run_node(struct kpv_harness *h, struct tree *t, uint64_t id,
		     long level)
{
	verify(h, t);		/* what the parent left us */
	cow_marks(h, t, id);
	verify(h, t);		/* our writes on top of the shared pages */
	if (level < depth && kpv_running(h)) {
		fork_children(h, t, id, level, width);
		verify(h, t);	/* the children's writes must not show */
	}
}

/* One generation of a relay chain: check, write, split and merge, hand on. */
static void relay_generation(struct kpv_harness *h, struct tree *t, long gen)
{
	char *page = t->region + (size_t)gen % t->npages * t->page_size;
	pid_t pid;

	verify(h, t);
	cow_marks(h, t, MAX_TREE + (uint64_t)gen);
	if (mprotect(page, t->page_size, PROT_READ) ||
	    mprotect(page, t->page_size, PROT_READ | PROT_WRITE))
		kpv_errno(h, errno);
	kpv_add(h, ST_RELAY, 1);
	if (gen + 1 >= relay || !kpv_running(h))
		return;
	pid = fork();
	if (pid < 0) {
		kpv_errno(h, errno);
		return;
	}
	kpv_add(h, ST_FORK, 1);
	if (pid == 0) {
		relay_generation(h, t, gen + 1);
		kpv_level(h, ST_MAX_PROCS, -1);
		_exit(0);
	}
	kpv_level(h, ST_MAX_PROCS, 1);
}

/* A relay chain: every generation exits once it forked the next; the root,
 * a subreaper, collects them all (each exit status checked). */
static void run_relay(struct kpv_harness *h, struct tree *t)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		kpv_errno(h, errno);
		return;
	}
	if (pid == 0) {
		kpv_level(h, ST_MAX_PROCS, 1);
		relay_generation(h, t, 0);
		kpv_level(h, ST_MAX_PROCS, -1);
		_exit(0);
	}
	kpv_add(h, ST_FORK, 1);
	while ((pid = wait(&status)) > 0 || errno == EINTR)
		if (pid > 0 && (!WIFEXITED(status) || WEXITSTATUS(status)))
			kpv_fail(h, "relay generation (pid %d) ended with status %#x",
				 pid, status);
}

static long tree_size(void)
{
	long total = 1, layer = 1;

	for (long d = 0; d < depth && total <= MAX_TREE; d++) {
		layer *= width;
		total += layer;
	}
	return total;
}

static void setup(struct tree *t)
{
	size_t bytes = (size_t)size_mb << 20;

	t->page_size = (size_t)sysconf(_SC_PAGESIZE);
	t->npages = bytes / t->page_size;
	t->region = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t->expect = calloc(t->npages, sizeof(*t->expect));
	t->gate = mmap(NULL, sizeof(*t->gate), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t->region == MAP_FAILED || !t->expect || t->gate == MAP_FAILED) {
		perror("fork: region");
		exit(2);
	}
	for (size_t i = 0; i < t->npages; i++)
		write_mark(t, i, 1ull << 32);
	if (corrupt)
		page_words(t, t->npages / 2)[1] ^= 1;	/* expect[] keeps the truth */
}

int main(int argc, char **argv)
{
	struct kpv_harness h;
	struct tree t = { 0 };

	kpv_init(&h, "fork", argc, argv, options,
		 sizeof(options) / sizeof(options[0]), stats,
		 sizeof(stats) / sizeof(stats[0]));
	if (size_mb < 1 || width < 1 || width > MAX_WIDTH || depth < 0 ||
	    cow_pct < 0 || cow_pct > 100 || tree_size() > MAX_TREE ||
	    wide < 0 || wide > MAX_WIDTH || relay < 0 || relay > MAX_TREE) {
		fprintf(stderr, "fork: need size-mb >= 1, 1 <= width <= %d, "
			"cow-pct 0-100 and at most %d processes in a tree\n",
			MAX_WIDTH, MAX_TREE);
		return 2;
	}
	setup(&t);
	kpv_level(&h, ST_MAX_PROCS, 1);
	prctl(PR_SET_CHILD_SUBREAPER, 1);	/* relay generations come back to us */
	do {
		long shape = (long)(t.round % 3);

		if (shape == 1 && wide > 0) {
			verify(&h, &t);
			*t.gate = 0;
			t.gate_target = wide;
			fork_children(&h, &t, 0, depth, wide);	/* leaves: one level */
			t.gate_target = 0;
			verify(&h, &t);
			/* A round the deadline cut may have let children go before all
			 * their siblings existed: only a whole round counts as wide. */
			if (kpv_running(&h) &&
			    __atomic_load_n(t.gate, __ATOMIC_RELAXED) >= (uint64_t)wide)
				kpv_add(&h, ST_WIDE, 1);
		} else if (shape == 2 && relay > 0) {
			run_relay(&h, &t);
		} else {
			run_node(&h, &t, 0, 0);
		}
		if (kpv_running(&h))	/* the reach rules ask for whole rounds only */
			kpv_add(&h, ST_ROUNDS, 1);
		t.round++;
	} while (kpv_running(&h));
	return kpv_finish(&h);
}
