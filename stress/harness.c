#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KPV_PRINT_LIMIT 20

static void usage(const char *prog, const struct kpv_option *opts, int nopts)
{
	fprintf(stderr, "usage: %s [--duration S] [--seed N] [--repeat N]", prog);
	for (int i = 0; i < nopts; i++)
		fprintf(stderr, " [--%s N]", opts[i].name);
	fprintf(stderr, "\n  --%-14s run for S seconds (default 10)\n"
		"  --%-14s seed of every random choice (default 1)\n",
		"duration S", "seed N");
	fprintf(stderr, "  --%-14s which run of a repeated test (printed only)\n",
		"repeat N");
	for (int i = 0; i < nopts; i++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "%s N", opts[i].name);
		fprintf(stderr, "  --%-14s %s (default %ld)\n", flag,
			opts[i].help, *opts[i].value);
	}
}

static int parse_long(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 0);
	return errno == 0 && end != s && *end == '\0';
}

/* Returns the option's value slot, or NULL for an unknown name. */
static long *find_option(struct kpv_harness *h, const char *name, size_t len,
			 const struct kpv_option *opts, int nopts)
{
	if (len == 8 && !strncmp(name, "duration", len))
		return &h->duration;
	if (len == 4 && !strncmp(name, "seed", len))
		return &h->seed;
	if (len == 6 && !strncmp(name, "repeat", len))
		return &h->repeat;
	for (int i = 0; i < nopts; i++)
		if (strlen(opts[i].name) == len && !strncmp(name, opts[i].name, len))
			return opts[i].value;
	return NULL;
}

static void parse_args(struct kpv_harness *h, int argc, char **argv,
		       const struct kpv_option *opts, int nopts)
{
	h->duration = 10;
	h->seed = 1;
	/* init sets KPV_REPEAT for every run of a repeated test */
	h->repeat = getenv("KPV_REPEAT") ? atol(getenv("KPV_REPEAT")) : 1;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value;
		const char *eq = strchr(arg, '=');
		size_t len;
		long *slot;

		if (!strcmp(arg, "--help") || strncmp(arg, "--", 2))
			goto bad;
		arg += 2;
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		slot = find_option(h, arg, len, opts, nopts);
		if (!slot)
			goto bad;
		if (eq)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else
			goto bad;
		if (!parse_long(value, slot))
			goto bad;
	}
	if (h->duration < 1 || h->repeat < 1)
		goto bad;
	return;
bad:
	usage(argv[0], opts, nopts);
	exit(2);
}

void kpv_init(struct kpv_harness *h, const char *test, int argc, char **argv,
	      const struct kpv_option *opts, int nopts,
	      const struct kpv_stat *stats, int nstats)
{
	if (nstats > KPV_MAX_STATS) {
		fprintf(stderr, "%s: %d statistics, at most %d\n", test, nstats,
			KPV_MAX_STATS);
		exit(2);
	}
	memset(h, 0, sizeof(*h));
	h->test = test;
	h->stats = stats;
	h->nstats = nstats;
	h->opts = opts;
	h->nopts = nopts;
	parse_args(h, argc, argv, opts, nopts);
	h->shared = mmap(NULL, sizeof(*h->shared), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (h->shared == MAP_FAILED) {
		perror("mmap of shared statistics");
		exit(2);
	}
	h->start_ns = kpv_now_ns();
	h->deadline_ns = h->start_ns + (uint64_t)h->duration * 1000000000ull;
}

uint64_t kpv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int kpv_running(const struct kpv_harness *h)
{
	return kpv_now_ns() < h->deadline_ns;
}

void kpv_rng_init(struct kpv_rng *r, uint64_t seed, uint64_t stream)
{
	/* Mix the stream in through one splitmix step so streams 0, 1, 2...
	 * of one seed do not start from neighbouring states. */
	r->state = seed ^ (stream * 0xd1342543de82ef95ull);
	kpv_rng_next(r);
}

uint64_t kpv_rng_next(struct kpv_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t kpv_rng_below(struct kpv_rng *r, uint64_t bound)
{
	return bound ? kpv_rng_next(r) % bound : 0;
}

void kpv_add(struct kpv_harness *h, int stat, uint64_t n)
{
	__atomic_fetch_add(&h->shared->stat[stat], n, __ATOMIC_RELAXED);
}

void kpv_max(struct kpv_harness *h, int stat, uint64_t value)
{
	uint64_t *slot = &h->shared->stat[stat];
	uint64_t seen = __atomic_load_n(slot, __ATOMIC_RELAXED);

	while (seen < value &&
	       !__atomic_compare_exchange_n(slot, &seen, value, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void kpv_level(struct kpv_harness *h, int stat, int64_t delta)
{
	uint64_t now = __atomic_add_fetch(&h->shared->level[stat],
					  (uint64_t)delta, __ATOMIC_RELAXED);

	kpv_max(h, stat, now);
}

void kpv_errno(struct kpv_harness *h, int err)
{
	if (err <= 0 || err >= KPV_MAX_ERRNO)
		err = 0;	/* slot 0 counts values we cannot name */
	__atomic_fetch_add(&h->shared->errno_count[err], 1, __ATOMIC_RELAXED);
}

/*
 * Counts one failure; says whether to print it.  A corrupted region fails
 * every page in every process, and a serial console at 115200 baud would
 * spend minutes printing that: the first few tell the story.
 */
static int count_failure(struct kpv_harness *h)
{
	uint64_t n = __atomic_add_fetch(&h->shared->check_failures, 1,
					__ATOMIC_RELAXED);

	if (n == KPV_PRINT_LIMIT + 1)
		fprintf(stderr, "%s: more check failures, not printed\n", h->test);
	return n <= KPV_PRINT_LIMIT;
}

void kpv_check_fail(struct kpv_harness *h, const void *addr,
		    uint64_t expected, uint64_t actual)
{
	if (count_failure(h))
		fprintf(stderr, "%s: check failed at %p: expected 0x%016llx, found 0x%016llx\n",
			h->test, addr, (unsigned long long)expected,
			(unsigned long long)actual);
}

void kpv_reap(struct kpv_harness *h, pid_t pid, const char *who)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			kpv_errno(h, errno);
			return;
		}
	if (WIFSIGNALED(status))
		kpv_fail(h, "%s (pid %d) killed by signal %d", who, pid,
			 WTERMSIG(status));
	else if (WEXITSTATUS(status))
		kpv_fail(h, "%s (pid %d) exited with status %d", who, pid,
			 WEXITSTATUS(status));
}

void kpv_fail(struct kpv_harness *h, const char *fmt, ...)
{
	va_list ap;

	if (!count_failure(h))
		return;
	fprintf(stderr, "%s: check failed: ", h->test);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int64_t kpv_read_counter(const char *file, const char *key)
{
	char line[256];
	size_t klen = key ? strlen(key) : 0;
	int64_t value = -1;
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!key) {
			value = strtoll(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			value = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return value;
}

void kpv_counters(struct kpv_harness *h, const struct kpv_counter *c, int n)
{
	if (n > KPV_MAX_COUNTERS) {
		fprintf(stderr, "%s: %d counters, at most %d\n", h->test, n,
			KPV_MAX_COUNTERS);
		exit(2);
	}
	h->counters = c;
	h->ncounters = n;
	for (int i = 0; i < n; i++)
		h->counter_start[i] = kpv_read_counter(c[i].file, c[i].key);
}

int kpv_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return errno;
	n = write(fd, text, strlen(text));
	if (n < 0) {
		int err = errno;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int kpv_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

/* /sys/devices/system/node/online reads "0" or "0-1" or "0-1,3". */
int kpv_nodes(void)
{
	char buf[128];
	int n = 0;
	FILE *f = fopen("/sys/devices/system/node/online", "r");

	if (!f)
		return 1;
	if (fgets(buf, sizeof(buf), f)) {
		for (char *tok = strtok(buf, ",\n"); tok; tok = strtok(NULL, ",\n")) {
			int lo, hi;

			if (sscanf(tok, "%d-%d", &lo, &hi) == 2)
				n += hi - lo + 1;
			else
				n += 1;
		}
	}
	fclose(f);
	return n > 0 ? n : 1;
}

void kpv_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % kpv_ncpus(), &set);
	sched_setaffinity(0, sizeof(set), &set);	/* best effort */
}

void kpv_page_sign(void *page, size_t page_size, uint64_t index, uint64_t mark)
{
	volatile uint64_t *head = page;
	volatile uint64_t *tail = (uint64_t *)((char *)page + page_size) - 2;

	head[0] = tail[0] = index | KPV_PAGE_TAG;
	head[1] = tail[1] = mark;
}

static int check_word(struct kpv_harness *h, const volatile uint64_t *word,
		      uint64_t expected)
{
	uint64_t found = *word;

	if (found == expected)
		return 1;
	kpv_check_fail(h, (const void *)word, expected, found);
	return 0;
}

int kpv_page_check(struct kpv_harness *h, const void *page, size_t page_size,
		   uint64_t index, uint64_t mark)
{
	const volatile uint64_t *head = page;
	const volatile uint64_t *tail =
		(const uint64_t *)((const char *)page + page_size) - 2;
	int ok = check_word(h, &head[0], index | KPV_PAGE_TAG);

	ok &= check_word(h, &head[1], mark);
	ok &= check_word(h, &tail[0], index | KPV_PAGE_TAG);
	ok &= check_word(h, &tail[1], mark);
	return ok;
}

int kpv_page_check_zero(struct kpv_harness *h, const void *page,
			size_t page_size)
{
	const volatile uint64_t *head = page;
	const volatile uint64_t *tail =
		(const uint64_t *)((const char *)page + page_size) - 2;
	int ok = check_word(h, &head[0], 0);

	ok &= check_word(h, &head[1], 0);
	ok &= check_word(h, &tail[0], 0);
	ok &= check_word(h, &tail[1], 0);
	return ok;
}

static const char *errno_name(int err)
{
	const char *name = err ? strerrorname_np(err) : NULL;

	return name ? name : "OTHER";
}

int kpv_finish(struct kpv_harness *h)
{
	const struct kpv_shared *s = h->shared;
	uint64_t elapsed_ms = (kpv_now_ns() - h->start_ns) / 1000000;
	uint64_t ops = 0, errors = 0;

	for (int i = 0; i < h->nstats; i++)
		if (h->stats[i].kind == KPV_OPS)
			ops += s->stat[i];
	for (int e = 0; e < KPV_MAX_ERRNO; e++)
		errors += s->errno_count[e];
	printf("@@kpv result %s ops=%llu elapsed_ms=%llu ops_per_s=%.1f errors=%llu "
	       "check_failures=%llu seed=%ld repeat=%ld", h->test,
	       (unsigned long long)ops, (unsigned long long)elapsed_ms,
	       elapsed_ms ? ops * 1000.0 / elapsed_ms : 0.0,
	       (unsigned long long)errors,
	       (unsigned long long)s->check_failures, h->seed, h->repeat);
	for (int i = 0; i < h->nstats; i++)
		printf(" %s%s=%llu", h->stats[i].name,
		       h->stats[i].kind == KPV_OPS ? "_ops" : "",
		       (unsigned long long)s->stat[i]);
	for (int e = 0; e < KPV_MAX_ERRNO; e++)
		if (s->errno_count[e])
			printf(" errno_%s=%llu", errno_name(e),
			       (unsigned long long)s->errno_count[e]);
	for (int i = 0; i < h->nopts; i++) {
		printf(" opt_");
		for (const char *c = h->opts[i].name; *c; c++)
			putchar(*c == '-' ? '_' : *c);
		printf("=%ld", *h->opts[i].value);
	}
	for (int i = 0; i < h->ncounters; i++) {
		int64_t now = kpv_read_counter(h->counters[i].file,
					       h->counters[i].key);

		if (now < 0 || h->counter_start[i] < 0)
			printf(" %s=na", h->counters[i].name);
		else
			printf(" %s=%lld", h->counters[i].name,
			       (long long)(now - h->counter_start[i]));
	}
	printf("\n");
	fflush(stdout);
	return s->check_failures ? 1 : 0;
}
