/*
 * migrate: move the pages of a fork tree between NUMA nodes, every way the
 * kernel can, while the tree reads and COW-writes them.
 *
 * The root maps and marks three private anonymous regions before forking
 * --procs readers, so every page is COW-shared with the whole tree and sits
 * in the root anon_vma:
 *
 *   R  --size-mb, marked pages (index and owner);
 *   H  --thp-mb, 2 MiB aligned, MADV_HUGEPAGE (with --thp 1);
 *   K  --ksm-mb, every page the same pattern, MADV_MERGEABLE (with --ksm 1).
 *
 * The root (the migrator) then loops, each step one of:
 *
 *   move_pages  --batch random pages of R (and some of H and K) to the next
 *               node with MPOL_MF_MOVE_ALL; the status of every page is
 *               tallied (moved, or by errno; a status the kernel did not
 *               write is counted as unwritten: 6.1 stops at the first
 *               failing batch), the query call confirms the node, and the
 *               pages' data is checked;
 *   migrate_pages  all pages of one reader to the next node;
 *   mbind       a small range of R bound to the next node (MPOL_MF_MOVE_ALL)
 *               and back to the default policy: a VMA split, a migration
 *               and a merge;
 *   collapse    MADV_COLLAPSE of one 2 MiB chunk of H (the tree shares its
 *               small pages; the root gets a THP of its own), then MADV_COLD
 *               of one of its pages, which splits that THP again;
 *
 * and every --compact-ms writes /proc/sys/vm/compact_memory (0: never).
 * Readers verify random pages of all three regions and COW-write a few of
 * R; after they exit the root checks every page it owns.
 */
#define _GNU_SOURCE
#include "harness.h"
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

#define MAX_PROCS 64
#define MAX_BATCH 4096
#define HPAGE (2ul << 20)
#define UNWRITTEN (-1000000)	/* a status value no kernel writes */
#define KSM_WORD 0x6b70766b736d2121ull
#define KSM "/sys/kernel/mm/ksm/"

enum {
	ST_MOVE, ST_MIGRATE, ST_MBIND, ST_COLLAPSE, ST_COMPACT, ST_COW,
	ST_REQUESTED, ST_MOVED, ST_CONFIRMED, ST_UNWRITTEN, ST_PARTIAL,
	ST_S_EBUSY, ST_S_ENOENT, ST_S_EFAULT, ST_S_EACCES, ST_S_ENOMEM,
	ST_S_OTHER, ST_COLLAPSED, ST_SPLITS, ST_KSM_SHARING, ST_MAX_PROCS,
	ST_NODES, ST_VERIFY,
};

static const struct kpv_stat stats[] = {
	[ST_MOVE] = { "move_pages", KPV_OPS },		/* calls */
	[ST_MIGRATE] = { "migrate_pages", KPV_OPS },	/* calls */
	[ST_MBIND] = { "mbind", KPV_OPS },		/* bind + reset pairs */
	[ST_COLLAPSE] = { "collapse", KPV_OPS },	/* collapse + split tries */
	[ST_COMPACT] = { "compact", KPV_OPS },		/* compact_memory writes */
	[ST_COW] = { "cow", KPV_OPS },			/* reader page writes */
	[ST_REQUESTED] = { "mp_requested", KPV_COUNT },	/* pages asked to move */
	[ST_MOVED] = { "mp_moved", KPV_COUNT },		/* status == target */
	[ST_CONFIRMED] = { "mp_confirmed", KPV_COUNT },	/* query: on target */
	[ST_UNWRITTEN] = { "mp_unwritten", KPV_COUNT },
	[ST_PARTIAL] = { "mp_partial", KPV_COUNT },	/* calls returning > 0 */
	[ST_S_EBUSY] = { "mp_ebusy", KPV_COUNT },
	[ST_S_ENOENT] = { "mp_enoent", KPV_COUNT },
	[ST_S_EFAULT] = { "mp_efault", KPV_COUNT },
	[ST_S_EACCES] = { "mp_eacces", KPV_COUNT },
	[ST_S_ENOMEM] = { "mp_enomem", KPV_COUNT },
	[ST_S_OTHER] = { "mp_other", KPV_COUNT },
	[ST_COLLAPSED] = { "collapsed", KPV_COUNT },	/* MADV_COLLAPSE == 0 */
	[ST_SPLITS] = { "split_tries", KPV_COUNT },	/* MADV_COLD of one page */
	[ST_KSM_SHARING] = { "ksm_pages_sharing", KPV_MAX },
	[ST_MAX_PROCS] = { "max_procs", KPV_PEAK },
	[ST_NODES] = { "nodes", KPV_MAX },
	[ST_VERIFY] = { "verify", KPV_COUNT },		/* pages checked */
};

static const struct kpv_counter counters[] = {
	{ "vm_pgmigrate_success", "/proc/vmstat", "pgmigrate_success" },
	{ "vm_pgmigrate_fail", "/proc/vmstat", "pgmigrate_fail" },
	{ "vm_thp_migration_success", "/proc/vmstat", "thp_migration_success" },
	{ "vm_thp_collapse_alloc", "/proc/vmstat", "thp_collapse_alloc" },
	{ "vm_thp_split_page", "/proc/vmstat", "thp_split_page" },
	{ "vm_compact_migrate_scanned", "/proc/vmstat", "compact_migrate_scanned" },
	{ "vm_compact_isolated", "/proc/vmstat", "compact_isolated" },
	{ "vm_numa_pages_migrated", "/proc/vmstat", "numa_pages_migrated" },
	{ "ksm_full_scans", KSM "full_scans", NULL },
};

static long size_mb = 8, thp_mb = 4, ksm_mb = 1, procs = 4, batch = 512;
static long compact_ms = 500, thp = 1, ksm = 1, corrupt;

static const struct kpv_option options[] = {
	{ "size-mb", &size_mb, "marked region R in MiB" },
	{ "thp-mb", &thp_mb, "THP region H in MiB (whole 2 MiB chunks)" },
	{ "ksm-mb", &ksm_mb, "KSM region K in MiB" },
	{ "procs", &procs, "reader processes sharing the regions" },
	{ "batch", &batch, "pages per move_pages call" },
	{ "compact-ms", &compact_ms, "ms between compact_memory writes (0: never)" },
	{ "thp", &thp, "1: collapse and split THPs in H" },
	{ "ksm", &ksm, "1: make K mergeable" },
	{ "corrupt", &corrupt, "1: damage one page to prove the check works" },
};

struct area {
	char *base;
	size_t npages;
	uint64_t *expect;	/* per page mark; NULL for K (one pattern) */
};

struct tree {
	struct area r, hp, k;
	size_t page;
	int nodes;
	pid_t readers[MAX_PROCS];
	void *pages[MAX_BATCH];
	int target[MAX_BATCH];
	int status[MAX_BATCH];
};

static char *at(const struct tree *t, const struct area *a, size_t i)
{
	return a->base + i * t->page;
}

static void fill_ksm(const struct tree *t, size_t i)
{
	uint64_t *w = (uint64_t *)at(t, &t->k, i);

	for (size_t n = 0; n < t->page / 8; n++)
		w[n] = KSM_WORD;
}

/* K pages all hold one pattern (KSM merges only identical pages), so they
 * carry no index; the pattern is checked at both ends. */
static int check_ksm(struct kpv_harness *h, const struct tree *t, size_t i)
{
	const volatile uint64_t *w = (const uint64_t *)at(t, &t->k, i);
	size_t last = t->page / 8 - 1;

	if (w[0] != KSM_WORD)
		kpv_check_fail(h, (const void *)&w[0], KSM_WORD, w[0]);
	if (w[last] != KSM_WORD)
		kpv_check_fail(h, (const void *)&w[last], KSM_WORD, w[last]);
	return w[0] == KSM_WORD && w[last] == KSM_WORD;
}

static void check_page(struct kpv_harness *h, const struct tree *t,
		       const struct area *a, size_t i)
{
	if (a == &t->k)
		check_ksm(h, t, i);
	else
		kpv_page_check(h, at(t, a, i), t->page, i, a->expect[i]);
	kpv_add(h, ST_VERIFY, 1);
}

static void check_area(struct kpv_harness *h, const struct tree *t,
		       const struct area *a)
{
	for (size_t i = 0; i < a->npages; i++)
		check_page(h, t, a, i);
}

static void *map_area(struct area *a, size_t bytes, size_t page, size_t align)
{
	char *p = mmap(NULL, bytes + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("migrate: mmap");
		exit(2);
	}
	if (align) {
		char *aligned = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));

		if (aligned > p)
			munmap(p, (size_t)(aligned - p));
		munmap(aligned + bytes, (size_t)(p + align - aligned));
		p = aligned;
	}
	a->base = p;
	a->npages = bytes / page;
	return p;
}

static void setup(struct kpv_harness *h, struct tree *t)
{
	t->page = (size_t)sysconf(_SC_PAGESIZE);
	t->nodes = kpv_nodes();
	kpv_max(h, ST_NODES, (uint64_t)t->nodes);
	map_area(&t->r, (size_t)size_mb << 20, t->page, 0);
	map_area(&t->hp, (size_t)thp_mb << 20, t->page, HPAGE);
	map_area(&t->k, (size_t)ksm_mb << 20, t->page, 0);
	t->r.expect = calloc(t->r.npages, sizeof(uint64_t));
	t->hp.expect = calloc(t->hp.npages, sizeof(uint64_t));
	if (!t->r.expect || !t->hp.expect) {
		perror("migrate: calloc");
		exit(2);
	}
	/* H starts as small pages even with THP "always": a THP from the first
	 * fault would be COW-shared after fork(), and then neither collapsed
	 * (it is one already) nor split by MADV_COLD (mapped more than once). */
	if (madvise(t->hp.base, t->hp.npages * t->page, MADV_NOHUGEPAGE))
		kpv_errno(h, errno);
	for (size_t i = 0; i < t->r.npages; i++) {
		kpv_page_sign(at(t, &t->r, i), t->page, i, 1);
		t->r.expect[i] = 1;
	}
	for (size_t i = 0; i < t->hp.npages; i++) {
		kpv_page_sign(at(t, &t->hp, i), t->page, i, 2);
		t->hp.expect[i] = 2;
	}
	if (thp && madvise(t->hp.base, t->hp.npages * t->page, MADV_HUGEPAGE))
		kpv_errno(h, errno);
	for (size_t i = 0; i < t->k.npages; i++)
		fill_ksm(t, i);
	if (ksm && madvise(t->k.base, t->k.npages * t->page, MADV_MERGEABLE))
		kpv_errno(h, errno);
}

static void reader(struct kpv_harness *h, struct tree *t, uint64_t id)
{
	struct area *areas[] = { &t->r, &t->hp, &t->k };
	struct kpv_rng rng;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	kpv_level(h, ST_MAX_PROCS, 1);
	kpv_rng_init(&rng, (uint64_t)h->seed, id + 1);
	for (uint64_t step = 1; kpv_running(h); step++) {
		for (int k = 0; k < 32; k++) {
			struct area *a = areas[kpv_rng_below(&rng, 3)];

			check_page(h, t, a, kpv_rng_below(&rng, a->npages));
		}
		if (step % 8 == 0) {	/* a COW write: this reader's own page now */
			size_t i = kpv_rng_below(&rng, t->r.npages);

			t->r.expect[i] = ((id + 2) << 40) | step;
			kpv_page_sign(at(t, &t->r, i), t->page, i, t->r.expect[i]);
			kpv_add(h, ST_COW, 1);
		}
		/* Readers pace themselves: the migrator must get the CPU even
		 * on one vCPU. */
		usleep(2000);
	}
	if (corrupt && id == 0)	/* just before the last check: it must see it */
		at(t, &t->r, t->r.npages / 2)[8] ^= 1;
	check_area(h, t, &t->r);
	check_area(h, t, &t->hp);
	check_area(h, t, &t->k);
	kpv_level(h, ST_MAX_PROCS, -1);
	_exit(0);
}

static void tally(struct kpv_harness *h, int status, int target)
{
	int stat;

	if (status == target) {
		kpv_add(h, ST_MOVED, 1);
		return;
	}
	switch (status) {
	case UNWRITTEN: stat = ST_UNWRITTEN; break;
	case -EBUSY: stat = ST_S_EBUSY; break;
	case -ENOENT: stat = ST_S_ENOENT; break;
	case -EFAULT: stat = ST_S_EFAULT; break;
	case -EACCES: stat = ST_S_EACCES; break;
	case -ENOMEM: stat = ST_S_ENOMEM; break;
	default:
		/* A node other than the target: the page stayed (or moved
		 * back already); a negative value: another errno. */
		stat = ST_S_OTHER;
	}
	kpv_add(h, stat, 1);
}

/* Picks page n of the batch: mostly R, every 8th from H, every 16th from K. */
static const struct area *pick(struct tree *t, struct kpv_rng *rng, long n,
			       size_t *index)
{
	const struct area *a = &t->r;

	if (n % 16 == 15 && ksm)
		a = &t->k;
	else if (n % 8 == 7 && thp)
		a = &t->hp;
	*index = kpv_rng_below(rng, a->npages);
	return a;
}

static void op_move_pages(struct kpv_harness *h, struct tree *t,
			  struct kpv_rng *rng, int node)
{
	const struct area *area[MAX_BATCH];
	size_t index[MAX_BATCH];
	long left;

	for (long n = 0; n < batch; n++) {
		area[n] = pick(t, rng, n, &index[n]);
		t->pages[n] = at(t, area[n], index[n]);
		t->target[n] = node;
		t->status[n] = UNWRITTEN;
	}
	left = kpv_move_pages(0, (unsigned long)batch, t->pages, t->target,
			      t->status, KPV_MPOL_MF_MOVE_ALL);
	kpv_add(h, ST_MOVE, 1);
	kpv_add(h, ST_REQUESTED, (uint64_t)batch);
	if (left < 0) {
		kpv_errno(h, errno);
		return;
	}
	if (left > 0)
		kpv_add(h, ST_PARTIAL, 1);
	for (long n = 0; n < batch; n++)
		tally(h, t->status[n], node);
	/* Query mode: where each page is now, whatever the status said. */
	if (kpv_move_pages(0, (unsigned long)batch, t->pages, NULL, t->status, 0) < 0)
		kpv_errno(h, errno);
	else
		for (long n = 0; n < batch; n++)
			if (t->status[n] == node)
				kpv_add(h, ST_CONFIRMED, 1);
	for (long n = 0; n < batch; n++)
		check_page(h, t, area[n], index[n]);
}

static void op_migrate_pages(struct kpv_harness *h, struct tree *t,
			     struct kpv_rng *rng, int node)
{
	pid_t pid = t->readers[kpv_rng_below(rng, (uint64_t)procs)];
	unsigned long all = (t->nodes >= KPV_MAX_NODES) ? ~0ul :
			    (1ul << t->nodes) - 1;

	if (pid <= 0)
		return;
	if (kpv_migrate_pages(pid, all, 1ul << node) < 0)
		kpv_errno(h, errno);
	kpv_add(h, ST_MIGRATE, 1);
}

static void op_mbind(struct kpv_harness *h, struct tree *t,
		     struct kpv_rng *rng, int node)
{
	size_t n = 1 + kpv_rng_below(rng, 16);
	size_t first = kpv_rng_below(rng, t->r.npages - n);
	char *addr = at(t, &t->r, first);

	if (kpv_mbind(addr, n * t->page, KPV_MPOL_BIND, 1ul << node,
		      KPV_MPOL_MF_MOVE | KPV_MPOL_MF_MOVE_ALL))
		kpv_errno(h, errno);
	for (size_t i = first; i < first + n; i++)
		check_page(h, t, &t->r, i);
	if (kpv_mbind(addr, n * t->page, KPV_MPOL_DEFAULT, 0, 0))
		kpv_errno(h, errno);
	kpv_add(h, ST_MBIND, 1);
}

static void op_collapse(struct kpv_harness *h, struct tree *t,
			struct kpv_rng *rng)
{
	size_t chunks = t->hp.npages * t->page / HPAGE;
	size_t c = kpv_rng_below(rng, chunks);
	char *chunk = t->hp.base + c * HPAGE;
	size_t first = c * (HPAGE / t->page);

	/* Collapse needs one writable PTE in the range (else SCAN_PAGE_RO, an
	 * EINVAL), and after fork() every shared page is write-protected: a COW
	 * write first makes one page the root's own. */
	t->hp.expect[first] = (1ull << 40) | (uint64_t)kpv_now_ns();
	kpv_page_sign(chunk, t->page, first, t->hp.expect[first]);
	if (madvise(chunk, HPAGE, MADV_COLLAPSE) == 0)
		kpv_add(h, ST_COLLAPSED, 1);
	else
		kpv_errno(h, errno);
	/* Deactivating one page of a THP this process alone maps splits
	 * it (madvise_cold_or_pageout_pte_range): split_huge_page. */
	if (madvise(chunk + t->page * kpv_rng_below(rng, HPAGE / t->page),
		    t->page, MADV_COLD) == 0)
		kpv_add(h, ST_SPLITS, 1);
	else
		kpv_errno(h, errno);
	for (size_t i = first; i < first + HPAGE / t->page; i++)
		check_page(h, t, &t->hp, i);
	kpv_add(h, ST_COLLAPSE, 1);
}

static void maybe_compact(struct kpv_harness *h, uint64_t *next)
{
	uint64_t now = kpv_now_ns();
	int err;

	if (compact_ms <= 0 || now < *next)
		return;
	*next = now + (uint64_t)compact_ms * 1000000ull;
	err = kpv_write_file("/proc/sys/vm/compact_memory", "1");
	if (err)
		kpv_errno(h, err);
	else
		kpv_add(h, ST_COMPACT, 1);
}

/* KSM's sharing counts are only meaningful while K is mapped: sample them. */
static void sample_ksm(struct kpv_harness *h)
{
	int64_t sharing = kpv_read_counter(KSM "pages_sharing", NULL);

	if (sharing > 0)
		kpv_max(h, ST_KSM_SHARING, (uint64_t)sharing);
}

/* ksmd merges a page on its second full scan of it: on a loaded host a short
 * run can end before that, and the reach check would fail a kernel for the
 * host's sake. K is still mapped here: give ksmd a bounded grace. */
#define KSM_GRACE_NS (20 * 1000000000ull)

static void await_ksm(struct kpv_harness *h)
{
	uint64_t until = kpv_now_ns() + KSM_GRACE_NS;

	/* Nothing to wait for without KSM in the kernel or with ksmd stopped. */
	if (kpv_read_counter(KSM "run", NULL) != 1)
		return;
	while (kpv_read_counter(KSM "pages_sharing", NULL) == 0 && kpv_now_ns() < until)
		usleep(100 * 1000);
	sample_ksm(h);
}

static void migrator(struct kpv_harness *h, struct tree *t)
{
	struct kpv_rng rng;
	uint64_t next_compact = 0;

	kpv_rng_init(&rng, (uint64_t)h->seed, 0);
	for (uint64_t step = 0; kpv_running(h); step++) {
		int node = (int)(step % (uint64_t)t->nodes);

		switch (step % 4) {
		case 0:
			op_move_pages(h, t, &rng, node);
			break;
		case 1:
			op_migrate_pages(h, t, &rng, node);
			break;
		case 2:
			op_mbind(h, t, &rng, node);
			break;
		default:
			if (thp)
				op_collapse(h, t, &rng);
			else
				op_move_pages(h, t, &rng, node);
		}
		maybe_compact(h, &next_compact);
		if (ksm && step % 16 == 0)
			sample_ksm(h);
	}
}

int main(int argc, char **argv)
{
	struct kpv_harness h;
	static struct tree t;

	kpv_init(&h, "migrate", argc, argv, options,
		 sizeof(options) / sizeof(options[0]), stats,
		 sizeof(stats) / sizeof(stats[0]));
	if (size_mb < 1 || thp_mb < 2 || thp_mb % 2 || ksm_mb < 1 || procs < 1 ||
	    procs > MAX_PROCS || batch < 1 || batch > MAX_BATCH) {
		fprintf(stderr, "migrate: need size-mb >= 1, an even thp-mb >= 2, "
			"ksm-mb >= 1, 1 <= procs <= %d, 1 <= batch <= %d\n",
			MAX_PROCS, MAX_BATCH);
		return 2;
	}
	kpv_counters(&h, counters, sizeof(counters) / sizeof(counters[0]));
	setup(&h, &t);
	kpv_level(&h, ST_MAX_PROCS, 1);
	for (long k = 0; k < procs; k++) {
		t.readers[k] = fork();
		if (t.readers[k] == 0)
			reader(&h, &t, (uint64_t)k);
		if (t.readers[k] < 0)
			kpv_errno(&h, errno);
	}
	migrator(&h, &t);
	if (ksm)
		await_ksm(&h);
	for (long k = 0; k < procs; k++)
		if (t.readers[k] > 0)
			kpv_reap(&h, t.readers[k], "reader");
	check_area(&h, &t, &t.r);
	check_area(&h, &t, &t.hp);
	check_area(&h, &t, &t.k);
	return kpv_finish(&h);
}
