/*
 * A range of marked pages (kpv_page_sign) and the mark each page must hold
 * for the process that owns this copy, for the programs that churn VMAs
 * under their own data (mmap, race).
 *
 * Beside it lies a PROT_NONE scratch area of the same size: mremap's
 * destination, kept reserved so that nothing else is ever mapped there.
 */
#ifndef KPV_RANGE_H
#define KPV_RANGE_H

#include "harness.h"

struct kpv_range {
	char *base;
	char *scratch;
	size_t npages, page;
	uint64_t *expect;	/* per page: the mark this process must see */
	int verify_stat;	/* the program's KPV_COUNT of pages checked */
};

/* Map bytes of private anonymous memory, every page signed with mark 1;
 * 0 or an errno value. */
int kpv_range_map(struct kpv_range *r, size_t bytes, int verify_stat);

char *kpv_range_page(const struct kpv_range *r, size_t i);

/* Check pages [first, first + n) against their expected marks. */
void kpv_range_check(struct kpv_harness *h, const struct kpv_range *r,
		     size_t first, size_t n);

/* Sign pages [first, first + n) with mark, and expect it from now on. */
void kpv_range_sign(struct kpv_range *r, size_t first, size_t n,
		    uint64_t mark);

/* Pages that must read as zero (after MADV_DONTNEED or a fresh map): check
 * that, then sign them with mark and check them again. */
void kpv_range_refill(struct kpv_harness *h, struct kpv_range *r,
		      size_t first, size_t n, uint64_t mark);

/* mremap pages [first, first + n) into the scratch area, check them there,
 * move them back and check them again.  0, or the errno of the first move
 * (then nothing moved).  Failing to move them back is fatal: the range
 * would be stranded and every later check of it would fail. */
int kpv_range_move_back(struct kpv_harness *h, struct kpv_range *r,
			size_t first, size_t n);

/* munmap pages [first, first + n), map them again and refill them with
 * mark.  0, or munmap's errno; a failed map is fatal, as above. */
int kpv_range_remap(struct kpv_harness *h, struct kpv_range *r, size_t first,
		    size_t n, uint64_t mark);

#endif
