/* journal.c - the store's write-ahead journal; see journal.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "hash.h"
#include "journal.h"
#include "wire.h"

#define SLOT_MAGIC 0x626a6331u /* "bjc1" */
#define REC_MAGIC 0x626a7231u  /* "bjr1" */
#define SLOT_HDR 16            /* magic, length, generation */
#define REC_HDR 24             /* magic, length, generation, sequence */
#define ZERO_STEP (1u << 20)   /* the file is written ahead in steps of this */

struct journal {
	int fd;
	uint64_t gen, seq; /* the records' generation, and its last record's number */
	uint64_t off;      /* where the next record goes */
	uint64_t last;     /* where the last one appended begins (else off) */
	uint64_t filled[2]; /* how far each region has been written ahead */
	/* The newest slot: its generation, and base.  Only journal_checkpoint
	 * changes them, so that it may run beside journal_append. */
	uint64_t based;
	int slot; /* where it lies; the next goes in the other */
	uint8_t *base;
	size_t nbase;
	char err[256];
};

static uint64_t
region(uint64_t gen)
{
	return JOURNAL_RECORDS + (gen & 1) * (uint64_t)JOURNAL_REGION;
}

static int
io_fail(struct journal *j, const char *what)
{
	snprintf(j->err, sizeof j->err, "journal: %s: %s", what,
	    errno ? strerror(errno) : "short write");
	return BABL_EIO;
}

/* Read exactly n bytes at off: 0, or -1 (short or failed). */
static int
read_at(int fd, void *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p = (uint8_t *)p + r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Write the iovecs whole at off. */
static int
write_at(int fd, struct iovec *iov, int niov, uint64_t off)
{
	while (niov) {
		ssize_t w = pwritev(fd, iov, niov, (off_t)off);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			if (w == 0)
				errno = 0;
			return -1;
		}
		off += (uint64_t)w;
		while (niov && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			niov--;
		}
		if (niov) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static void
seal(uint8_t out[HASH_LEN], const uint8_t *hdr, size_t hl, const void *body, size_t n)
{
	struct hash_state st;
	hash_init(&st);
	hash_update(&st, hdr, hl);
	hash_update(&st, body, n);
	hash_final(&st, out);
}

/* Slot i's generation and base (malloc'd into *base), or 0 if it holds none. */
static uint64_t
read_slot(struct journal *j, int i, uint8_t **base, size_t *n)
{
	uint8_t hdr[SLOT_HDR], h[HASH_LEN];
	uint64_t at = (uint64_t)i * JOURNAL_SLOT;
	if (read_at(j->fd, hdr, sizeof hdr, at) || be32_get(hdr) != SLOT_MAGIC)
		return 0;
	uint32_t len = be32_get(hdr + 4);
	uint64_t gen = be64_get(hdr + 8);
	uint8_t *b = len <= JOURNAL_BASE_MAX ? malloc(len + HASH_LEN) : NULL;
	if (!b || gen == 0 || read_at(j->fd, b, len + HASH_LEN, at + SLOT_HDR)) {
		free(b);
		return 0;
	}
	seal(h, hdr, sizeof hdr, b, len);
	if (memcmp(h, b + len, HASH_LEN)) {
		free(b);
		return 0;
	}
	*base = b;
	*n = len;
	return gen;
}

int
journal_open(struct journal **out, const char *dir, char *err, size_t errlen)
{
	char path[4200];
	struct journal *j = calloc(1, sizeof *j);
	*out = NULL;
	if (!j) {
		snprintf(err, errlen, "journal: out of memory");
		return BABL_ENOMEM;
	}
	snprintf(path, sizeof path, "%s/journal", dir);
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(j);
		return BABL_EIO;
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB)) {
		int busy = errno == EWOULDBLOCK;
		snprintf(err, errlen, busy ? "%s is in use by another process (another meshd?)"
		    : "cannot lock %s: %s", path, strerror(errno));
		close(j->fd);
		free(j);
		return busy ? BABL_EBUSY : BABL_EIO;
	}
	/* What lies in the regions is not known: each is written ahead afresh
	 * from its start when first used. */
	j->slot = 1;
	j->filled[0] = region(0);
	j->filled[1] = region(1);
	for (int i = 0; i < 2; i++) {
		uint8_t *b = NULL;
		size_t n = 0;
		uint64_t g = read_slot(j, i, &b, &n);
		if (g > j->based) {
			free(j->base);
			j->based = g;
			j->slot = i;
			j->base = b;
			j->nbase = n;
		} else {
			free(b);
		}
	}
	j->gen = j->based;
	j->off = j->last = region(j->gen);
	*out = j;
	return 0;
}

void
journal_close(struct journal *j)
{
	if (!j)
		return;
	close(j->fd); /* (drops the lock) */
	free(j->base);
	free(j);
}

uint64_t
journal_base(const struct journal *j, const uint8_t **p, size_t *n)
{
	*p = j->base;
	*n = j->nbase;
	return j->based;
}

const char *
journal_errstr(const struct journal *j)
{
	return j->err;
}

/* Replay generation gen's records from its region's start; appends go on
 * after the last, if there was one. */
static int
replay_gen(struct journal *j, uint64_t gen, int (*fn)(void *, const uint8_t *, size_t),
    void *arg)
{
	uint8_t hdr[REC_HDR], h[HASH_LEN];
	uint64_t off = region(gen), end = off + JOURNAL_REGION, seq = 0;
	int rc = 0;
	while (rc == 0) {
		if (read_at(j->fd, hdr, sizeof hdr, off) || be32_get(hdr) != REC_MAGIC ||
		    be64_get(hdr + 8) != gen || be64_get(hdr + 16) != seq + 1)
			break;
		uint64_t len = be32_get(hdr + 4);
		if (off + REC_HDR + len + HASH_LEN > end)
			break;
		uint8_t *b = malloc(len + HASH_LEN);
		if (!b) {
			snprintf(j->err, sizeof j->err, "journal: out of memory replaying");
			return BABL_ENOMEM;
		}
		if (read_at(j->fd, b, len + HASH_LEN, off + REC_HDR)) {
			free(b);
			break;
		}
		seal(h, hdr, sizeof hdr, b, len);
		if (memcmp(h, b + len, HASH_LEN)) {
			free(b);
			break;
		}
		rc = fn(arg, b, len);
		free(b);
		if (rc == 0) {
			off += REC_HDR + len + HASH_LEN;
			seq++;
		}
	}
	if (seq) {
		j->gen = gen;
		j->off = j->last = off;
		j->seq = seq;
	}
	return rc;
}

int
journal_replay(struct journal *j, int (*fn)(void *, const uint8_t *, size_t), void *arg)
{
	if (j->based == 0)
		return 0;
	j->gen = j->based;
	j->off = j->last = region(j->gen);
	j->seq = 0;
	int rc = replay_gen(j, j->based, fn, arg);
	/* The next generation's records, if its checkpoint did not finish. */
	if (rc == 0)
		rc = replay_gen(j, j->based + 1, fn, arg);
	return rc;
}

uint64_t
journal_room(const struct journal *j)
{
	uint64_t used = j->off + REC_HDR + HASH_LEN, end = region(j->gen) + JOURNAL_REGION;
	return used < end ? end - used : 0;
}

/* Make sure bytes up to end have been written, so that a sync of a record
 * there changes no file metadata (its size, its blocks): one flush. */
static int
fill_to(struct journal *j, uint64_t end)
{
	static const uint8_t zeros[1 << 16];
	uint64_t *filled = &j->filled[j->gen & 1];
	uint64_t last = region(j->gen) + JOURNAL_REGION;
	if (*filled < j->off)
		*filled = j->off; /* (records lie before it) */
	if (end <= *filled)
		return 0;
	uint64_t to = (end - JOURNAL_RECORDS + ZERO_STEP - 1) / ZERO_STEP * ZERO_STEP +
	    JOURNAL_RECORDS;
	if (to > last)
		to = last;
	while (*filled < to) {
		uint64_t k = to - *filled < sizeof zeros ? to - *filled : sizeof zeros;
		struct iovec v = {(void *)zeros, (size_t)k};
		if (write_at(j->fd, &v, 1, *filled))
			return io_fail(j, "writing ahead");
		*filled += k;
	}
	return 0;
}

int
journal_append(struct journal *j, const void *body, size_t n)
{
	uint8_t hdr[REC_HDR], h[HASH_LEN];
	if (j->gen == 0)
		return BABL_EINTERNAL; /* no checkpoint yet: nothing to replay from */
	if (n > journal_room(j))
		return BABL_ETOOBIG;
	uint64_t end = j->off + REC_HDR + n + HASH_LEN;
	int rc = fill_to(j, end);
	if (rc)
		return rc;
	be32_put(hdr, REC_MAGIC);
	be32_put(hdr + 4, (uint32_t)n);
	be64_put(hdr + 8, j->gen);
	be64_put(hdr + 16, j->seq + 1);
	seal(h, hdr, sizeof hdr, body, n);
	struct iovec iov[3] = {{hdr, sizeof hdr}, {(void *)body, n}, {h, sizeof h}};
	errno = 0;
	if (write_at(j->fd, iov, 3, j->off))
		return io_fail(j, "writing a record");
	if (fdatasync(j->fd))
		return io_fail(j, "syncing a record");
	j->last = j->off;
	j->off = end;
	j->seq++;
	return 0;
}

int
journal_unappend(struct journal *j)
{
	static const uint8_t zeros[REC_HDR];
	if (j->last >= j->off) /* (open, replay and rotate set last = off) */
		return BABL_EINTERNAL;
	struct iovec v = {(void *)zeros, sizeof zeros};
	errno = 0;
	if (write_at(j->fd, &v, 1, j->last) || fdatasync(j->fd))
		return io_fail(j, "taking back a record");
	j->off = j->last;
	j->seq--;
	return 0;
}

uint64_t
journal_rotate(struct journal *j)
{
	j->gen++;
	j->seq = 0;
	j->off = j->last = region(j->gen);
	return j->gen;
}

int
journal_checkpoint(struct journal *j, uint64_t gen, const void *base, size_t n,
    char *err, size_t errlen)
{
	uint8_t hdr[SLOT_HDR], h[HASH_LEN];
	if (n > JOURNAL_BASE_MAX)
		return BABL_ETOOBIG;
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy) {
		snprintf(err, errlen, "journal: out of memory");
		return BABL_ENOMEM;
	}
	if (n)
		memcpy(copy, base, n);
	be32_put(hdr, SLOT_MAGIC);
	be32_put(hdr + 4, (uint32_t)n);
	be64_put(hdr + 8, gen);
	seal(h, hdr, sizeof hdr, base, n);
	struct iovec iov[3] = {{hdr, sizeof hdr}, {(void *)base, n}, {h, sizeof h}};
	errno = 0;
	int slot = !j->slot;
	if (write_at(j->fd, iov, 3, (uint64_t)slot * JOURNAL_SLOT) || fdatasync(j->fd)) {
		snprintf(err, errlen, "journal: writing a checkpoint: %s",
		    errno ? strerror(errno) : "short write");
		free(copy);
		return BABL_EIO;
	}
	free(j->base);
	j->base = copy;
	j->nbase = n;
	j->based = gen;
	j->slot = slot;
	return 0;
}
