/*
 * mmap: churn small ranges of an anonymous region shared by a fork tree.
 *
 * The root maps a private anonymous region, marks every page (index and
 * owner), and cuts it into cells of --cell-pages pages whose first page is
 * made read-only: two VMAs per cell, so hundreds to thousands of VMAs in
 * all.  It then forks --procs workers, which share every page (and the root
 * anon_vma) until they write.  Each worker loops over random ranges of 1 to
 * cell-pages - 1 pages inside one cell, doing one of:
 *
 *   mprotect   read-only then read-write again: __split_vma, then vma_merge
 *              back (__vma_adjust), then a COW write of the first page;
 *   mremap     away to a reserved spot (no merge there), then back next to
 *              its old neighbours, where copy_vma merges and mremap must take
 *              the rmap locks (need_rmap_locks);
 *   remap      munmap plus mmap(MAP_FIXED) of the same range: unlink and
 *              re-link anon_vmas, merges, a new anon_vma_prepare;
 *   dontneed   MADV_DONTNEED: the range must then read as zeroes.
 *
 * After every step the range is verified (old marks, or zeroes where the
 * kernel must have dropped the pages, then the new marks), and the whole
 * region every 64 steps and at the end.  The expected mark of every page is
 * kept in a private array, inherited with the region.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "range.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 256
#define FULL_CHECK_EVERY 64
#define MAPS_EVERY 16		/* mprotect splits between map_count samples */

enum {
	ST_MPROTECT, ST_MREMAP, ST_REMAP, ST_DONTNEED, ST_VERIFY,
	ST_MAX_MAPS, ST_MAX_PROCS, ST_VMAS_START, ST_MREMAP_SPAN,
};

static const struct kpv_stat stats[] = {
	[ST_MPROTECT] = { "mprotect", KPV_OPS },	/* split + merge pairs */
	[ST_MREMAP] = { "mremap", KPV_OPS },		/* away + back pairs */
	[ST_REMAP] = { "remap", KPV_OPS },		/* munmap + MAP_FIXED */
	[ST_DONTNEED] = { "dontneed", KPV_OPS },
	[ST_VERIFY] = { "verify", KPV_COUNT },		/* pages checked */
	[ST_MAX_MAPS] = { "max_map_count", KPV_MAX },	/* VMAs of one process */
	[ST_MAX_PROCS] = { "max_procs", KPV_PEAK },
	[ST_VMAS_START] = { "vmas_start", KPV_MAX },	/* after the cells were cut */
	[ST_MREMAP_SPAN] = { "mremap_span", KPV_COUNT },	/* ranges over 2 VMAs */
};

static long size_mb = 8, cell_pages = 8, procs = 2, corrupt;

static const struct kpv_option options[] = {
	{ "size-mb", &size_mb, "anonymous region in MiB" },
	{ "cell-pages", &cell_pages, "pages per cell; its first page stays read-only" },
	{ "procs", &procs, "worker processes forked from the root" },
	{ "corrupt", &corrupt, "1: damage one page to prove the check works" },
};

static int count_maps(void)
{
	char buf[4096];
	int lines = 0;
	ssize_t n;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return 0;
	while ((n = (ssize_t)fread(buf, 1, sizeof(buf), f)) > 0)
		for (ssize_t k = 0; k < n; k++)
			lines += buf[k] == '\n';
	fclose(f);
	return lines;
}

static void op_mprotect(struct kpv_harness *h, struct kpv_range *r, size_t first,
			size_t n, uint64_t mark, int sample)
{
	char *addr = kpv_range_page(r, first);

	if (mprotect(addr, n * r->page, PROT_READ)) {
		kpv_errno(h, errno);
		return;
	}
	if (sample)
		kpv_max(h, ST_MAX_MAPS, (uint64_t)count_maps());
	kpv_range_check(h, r, first, n);
	if (mprotect(addr, n * r->page, PROT_READ | PROT_WRITE)) {
		kpv_errno(h, errno);
		return;
	}
	kpv_range_sign(r, first, 1, mark);
	kpv_range_check(h, r, first, n);
	kpv_add(h, ST_MPROTECT, 1);
}

static void op_mremap(struct kpv_harness *h, struct kpv_range *r, size_t first,
		      size_t n)
{
	int err = kpv_range_move_back(h, r, first, n);

	/* 6.1 moves one VMA at a time (EFAULT for a range spanning two, which
	 * remap and dontneed leave behind): one page always fits. */
	if (err == EFAULT && n > 1) {
		kpv_add(h, ST_MREMAP_SPAN, 1);
		err = kpv_range_move_back(h, r, first, 1);
	}
	if (err) {
		kpv_errno(h, err);
		return;
	}
	kpv_add(h, ST_MREMAP, 1);
}

static void op_remap(struct kpv_harness *h, struct kpv_range *r, size_t first,
		     size_t n, uint64_t mark)
{
	int err = kpv_range_remap(h, r, first, n, mark);

	if (err) {
		kpv_errno(h, err);
		return;
	}
	kpv_add(h, ST_REMAP, 1);
}

static void op_dontneed(struct kpv_harness *h, struct kpv_range *r, size_t first,
			size_t n, uint64_t mark)
{
	if (madvise(kpv_range_page(r, first), n * r->page, MADV_DONTNEED)) {
		kpv_errno(h, errno);
		return;
	}
	kpv_range_refill(h, r, first, n, mark);
	kpv_add(h, ST_DONTNEED, 1);
}

static void worker(struct kpv_harness *h, struct kpv_range *r, uint64_t id)
{
	size_t cells = r->npages / (size_t)cell_pages;
	struct kpv_rng rng;

	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* die with the root */
	kpv_level(h, ST_MAX_PROCS, 1);
	kpv_rng_init(&rng, (uint64_t)h->seed, id);
	kpv_range_check(h, r, 0, r->npages);
	for (uint64_t step = 1; kpv_running(h); step++) {
		size_t cell = kpv_rng_below(&rng, cells);
		size_t off = 1 + kpv_rng_below(&rng, (uint64_t)cell_pages - 1);
		size_t n = 1 + kpv_rng_below(&rng, (uint64_t)cell_pages - off);
		size_t first = cell * (size_t)cell_pages + off;
		uint64_t mark = ((id + 1) << 40) | step;

		switch (kpv_rng_below(&rng, 4)) {
		case 0:
			op_mprotect(h, r, first, n, mark, step % MAPS_EVERY == 0);
			break;
		case 1:
			op_mremap(h, r, first, n);
			break;
		case 2:
			op_remap(h, r, first, n, mark);
			break;
		default:
			op_dontneed(h, r, first, n, mark);
		}
		if (step % FULL_CHECK_EVERY == 0)
			kpv_range_check(h, r, 0, r->npages);
	}
	if (corrupt && id == 0)	/* just before the last check: it must see it */
		kpv_range_page(r, r->npages / 2 + 1)[8] ^= 1; /* word 1 */
	kpv_range_check(h, r, 0, r->npages);
	kpv_level(h, ST_MAX_PROCS, -1);
	_exit(0);
}

static void setup(struct kpv_harness *h, struct kpv_range *r)
{
	int err = kpv_range_map(r, (size_t)size_mb << 20, ST_VERIFY);

	if (err) {
		fprintf(stderr, "mmap: region: %s\n", strerror(err));
		exit(2);
	}
	/* The read-only first page of every cell keeps the cells apart:
	 * without it the whole region would merge back into one VMA. */
	for (size_t c = 0; c < r->npages; c += (size_t)cell_pages)
		if (mprotect(kpv_range_page(r, c), r->page, PROT_READ)) {
			perror("mmap: cutting cells");
			exit(2);
		}
	kpv_max(h, ST_VMAS_START, (uint64_t)count_maps());
}

int main(int argc, char **argv)
{
	struct kpv_harness h;
	struct kpv_range r = { 0 };
	pid_t pids[MAX_PROCS];

	kpv_init(&h, "mmap", argc, argv, options,
		 sizeof(options) / sizeof(options[0]), stats,
		 sizeof(stats) / sizeof(stats[0]));
	if (size_mb < 1 || cell_pages < 2 || procs < 1 || procs > MAX_PROCS) {
		fprintf(stderr, "mmap: need size-mb >= 1, cell-pages >= 2 and "
			"1 <= procs <= %d\n", MAX_PROCS);
		return 2;
	}
	setup(&h, &r);
	kpv_level(&h, ST_MAX_PROCS, 1);
	for (long k = 0; k < procs; k++) {
		pids[k] = fork();
		if (pids[k] == 0)
			worker(&h, &r, (uint64_t)k);
		if (pids[k] < 0)
			kpv_errno(&h, errno);
	}
	for (long k = 0; k < procs; k++)
		if (pids[k] > 0)
			kpv_reap(&h, pids[k], "worker");
	/* The workers' writes were their own: the root still sees its marks. */
	kpv_range_check(&h, &r, 0, r.npages);
	return kpv_finish(&h);
}
