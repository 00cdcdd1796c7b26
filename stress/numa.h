/*
 * Raw NUMA system calls for kpv's stress programs: the guest has no libnuma,
 * and these are all the programs need.
 */
#ifndef KPV_NUMA_H
#define KPV_NUMA_H

#include <sys/syscall.h>
#include <unistd.h>

#define KPV_MPOL_DEFAULT 0
#define KPV_MPOL_BIND 2
#define KPV_MPOL_MF_MOVE (1 << 1)
#define KPV_MPOL_MF_MOVE_ALL (1 << 2)	/* also pages other processes map; root */
#define KPV_MAX_NODES 64	/* bits in one node mask word */

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25	/* 6.1 has it; older libc headers do not */
#endif

/* Returns the number of pages not moved (> 0 means partial), or -1. */
static inline long kpv_move_pages(int pid, unsigned long count, void **pages,
				  const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, pid, count, pages, nodes, status, flags);
}

static inline long kpv_migrate_pages(int pid, unsigned long from,
				     unsigned long to)
{
	return syscall(SYS_migrate_pages, pid, KPV_MAX_NODES + 1, &from, &to);
}

static inline long kpv_mbind(void *addr, unsigned long len, int mode,
			     unsigned long nodemask, unsigned flags)
{
	return syscall(SYS_mbind, addr, len, mode,
		       mode == KPV_MPOL_DEFAULT ? NULL : &nodemask,
		       mode == KPV_MPOL_DEFAULT ? 0 : KPV_MAX_NODES + 1, flags);
}

#endif
