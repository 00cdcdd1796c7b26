/*
 * Shared harness for kpv's static stress programs.
 *
 * A program declares its options and its statistics as tables, calls
 * kpv_init() once, loops while kpv_running(), and ends with
 * `return kpv_finish(&h);`, which prints the one result line kpv parses:
 *
 *   @@kpv result <test> ops=<n> elapsed_ms=<n> ops_per_s=<x.y> errors=<n>
 *       check_failures=<n> seed=<n> repeat=<n> <kind>_ops=<n>... <name>=<n>...
 *       errno_<NAME>=<n>... opt_<option>=<n>... <counter>=<delta>|na...
 *
 * Counters are the kernel's own (/proc/vmstat, /sys/kernel/mm/ksm/...),
 * read when kpv_counters() is called and again at the end: the line carries
 * their deltas, the proof that a test's kernel path ran.  "na" means the
 * kernel does not have the counter (a config option is off).
 *
 * Statistics live in a MAP_SHARED page made before any fork(), so every
 * process of a fork tree adds to the same totals; they are updated with
 * atomics.  A data-check failure is printed to stderr at once (address,
 * expected, actual) and makes the exit status non-zero.
 */
#ifndef KPV_HARNESS_H
#define KPV_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Per-program integer option: --<name> <value> or --<name>=<value>. */
struct kpv_option {
	const char *name;
	long *value;		/* holds the default; overwritten when given */
	const char *help;
};

enum kpv_stat_kind {
	KPV_OPS,		/* operations: summed into ops=, printed <name>_ops= */
	KPV_COUNT,		/* a plain total, printed <name>= */
	KPV_MAX,		/* largest value seen, printed <name>= */
	KPV_PEAK,		/* a level moved by +/-; its peak is printed <name>= */
};

struct kpv_stat {
	const char *name;
	enum kpv_stat_kind kind;
};

#define KPV_MAX_STATS 32
#define KPV_MAX_COUNTERS 16
#define KPV_MAX_ERRNO 160	/* above every Linux errno value */

/* Lives in shared memory: see the file comment. */
struct kpv_shared {
	uint64_t stat[KPV_MAX_STATS];
	uint64_t level[KPV_MAX_STATS];	/* current level of KPV_PEAK stats */
	uint64_t errno_count[KPV_MAX_ERRNO];
	uint64_t check_failures;
};

/* A kernel counter: the value on line `key` of `file`, or the whole file
 * when key is NULL. */
struct kpv_counter {
	const char *name;	/* in the result line */
	const char *file;
	const char *key;
};

struct kpv_harness {
	const char *test;	/* name in the result line */
	long duration;		/* seconds */
	long seed;
	long repeat;		/* which run of a repeated test; printed only */
	const struct kpv_option *opts;
	int nopts;
	const struct kpv_counter *counters;
	int ncounters;
	int64_t counter_start[KPV_MAX_COUNTERS];	/* -1: unavailable */
	const struct kpv_stat *stats;
	int nstats;
	uint64_t start_ns;	/* CLOCK_MONOTONIC */
	uint64_t deadline_ns;
	struct kpv_shared *shared;
};

/* splitmix64: tiny, seedable, and good enough to pick pages and sizes. */
struct kpv_rng {
	uint64_t state;
};

/*
 * Parse argv (--duration, --seed, --help and the program's options), map the
 * shared statistics and start the clock.  Exits with status 2 on a usage
 * error, printing the usage to stderr.
 */
void kpv_init(struct kpv_harness *h, const char *test, int argc, char **argv,
	      const struct kpv_option *opts, int nopts,
	      const struct kpv_stat *stats, int nstats);

uint64_t kpv_now_ns(void);
int kpv_running(const struct kpv_harness *h);

/* Independent streams for each process of a tree: same seed, same run. */
void kpv_rng_init(struct kpv_rng *r, uint64_t seed, uint64_t stream);
uint64_t kpv_rng_next(struct kpv_rng *r);
uint64_t kpv_rng_below(struct kpv_rng *r, uint64_t bound);

void kpv_add(struct kpv_harness *h, int stat, uint64_t n);
void kpv_max(struct kpv_harness *h, int stat, uint64_t value);
void kpv_level(struct kpv_harness *h, int stat, int64_t delta);

/* Count one failed system call by its errno (pass errno). */
void kpv_errno(struct kpv_harness *h, int err);

/* A word in memory did not hold what it should. */
void kpv_check_fail(struct kpv_harness *h, const void *addr,
		    uint64_t expected, uint64_t actual);

/* Any other failed check (a child killed by a signal, say). */
void kpv_fail(struct kpv_harness *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Wait for a child; one that crashed or exited non-zero is a failed check
 * naming `who` (its data-check failures it counted itself). */
void kpv_reap(struct kpv_harness *h, pid_t pid, const char *who);

/* Start the deltas of these kernel counters (at most KPV_MAX_COUNTERS). */
void kpv_counters(struct kpv_harness *h, const struct kpv_counter *c, int n);

/* A counter's value now, or -1 when the file or the key is missing. */
int64_t kpv_read_counter(const char *file, const char *key);

/* Write text to a /proc or /sys file; 0 or an errno value. */
int kpv_write_file(const char *path, const char *text);

/* Online CPUs and NUMA nodes (1 when the kernel has no NUMA). */
int kpv_ncpus(void);
int kpv_nodes(void);

/* Pin the calling task to one CPU (modulo the online count). */
void kpv_pin(int cpu);

/*
 * Marked pages: a page carries its index (tagged, so a zero page never
 * passes) and its owner's mark in the first and the last two words.  A
 * check counts and prints every wrong word (address, expected, found).
 */
#define KPV_PAGE_TAG 0x6b70760000000000ull
void kpv_page_sign(void *page, size_t page_size, uint64_t index, uint64_t mark);
/* 1 when the page holds index and mark, else 0 (failures counted). */
int kpv_page_check(struct kpv_harness *h, const void *page, size_t page_size,
		   uint64_t index, uint64_t mark);
/* 1 when the marked words are zero, as after MADV_DONTNEED or a new map. */
int kpv_page_check_zero(struct kpv_harness *h, const void *page,
			size_t page_size);

/* Print the result line; returns the exit status (1 on check failures). */
int kpv_finish(struct kpv_harness *h);

#endif
