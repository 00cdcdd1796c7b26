#define _GNU_SOURCE
#include "range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int kpv_range_map(struct kpv_range *r, size_t bytes, int verify_stat)
{
	r->page = (size_t)sysconf(_SC_PAGESIZE);
	r->npages = bytes / r->page;
	r->verify_stat = verify_stat;
	r->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->base == MAP_FAILED)
		return errno;
	r->scratch = mmap(NULL, bytes, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->scratch == MAP_FAILED)
		return errno;
	r->expect = calloc(r->npages, sizeof(*r->expect));
	if (!r->expect)
		return ENOMEM;
	kpv_range_sign(r, 0, r->npages, 1);
	return 0;
}

char *kpv_range_page(const struct kpv_range *r, size_t i)
{
	return r->base + i * r->page;
}

/* Check pages of the range where they lie now: base, or scratch while moved. */
static void check_at(struct kpv_harness *h, const struct kpv_range *r,
		     char *at, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		kpv_page_check(h, at + i * r->page, r->page, i, r->expect[i]);
	kpv_add(h, r->verify_stat, n);
}

void kpv_range_check(struct kpv_harness *h, const struct kpv_range *r,
		     size_t first, size_t n)
{
	check_at(h, r, r->base, first, n);
}

void kpv_range_sign(struct kpv_range *r, size_t first, size_t n,
		    uint64_t mark)
{
	for (size_t i = first; i < first + n; i++) {
		kpv_page_sign(kpv_range_page(r, i), r->page, i, mark);
		r->expect[i] = mark;
	}
}

void kpv_range_refill(struct kpv_harness *h, struct kpv_range *r,
		      size_t first, size_t n, uint64_t mark)
{
	for (size_t i = first; i < first + n; i++)
		kpv_page_check_zero(h, kpv_range_page(r, i), r->page);
	kpv_range_sign(r, first, n, mark);
	kpv_range_check(h, r, first, n);
}

static void *move(char *from, char *to, size_t len)
{
	return mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
}

int kpv_range_move_back(struct kpv_harness *h, struct kpv_range *r,
			size_t first, size_t n)
{
	char *home = kpv_range_page(r, first);
	char *away = r->scratch + first * r->page;
	size_t len = n * r->page;

	if (move(home, away, len) == MAP_FAILED)
		return errno;
	check_at(h, r, r->scratch, first, n);
	if (move(away, home, len) == MAP_FAILED) {
		kpv_fail(h, "mremap back to %p failed: %s", (void *)home,
			 strerror(errno));
		_exit(1);
	}
	/* Reserve the scratch again: mremap left a hole there. */
	if (mmap(away, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
		 MAP_NORESERVE, -1, 0) == MAP_FAILED)
		kpv_errno(h, errno);
	kpv_range_check(h, r, first, n);
	return 0;
}

int kpv_range_remap(struct kpv_harness *h, struct kpv_range *r, size_t first,
		    size_t n, uint64_t mark)
{
	char *addr = kpv_range_page(r, first);
	size_t len = n * r->page;

	if (munmap(addr, len))
		return errno;
	if (mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_FIXED, -1, 0) == MAP_FAILED) {
		kpv_fail(h, "mmap(MAP_FIXED) at %p failed: %s", (void *)addr,
			 strerror(errno));
		_exit(1);
	}
	kpv_range_refill(h, r, first, n, mark);
	return 0;
}
