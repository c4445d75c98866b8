// fuzz-sources: meshd/raft.c
// fuzz-libs:
/*
 * fuzz_raft_msg.c - libFuzzer harness for the Raft message codec and for
 * raft_step on hostile messages.
 *
 * raft_msg_decode must take any bytes without crashing and refuse with
 * BABL_EPROTO or BABL_ETOOBIG.  A message it accepts encodes again to the
 * very same bytes (the encoding is unique), its borrowed entry and chunk
 * data lie inside the input, and it is then stepped into a fresh node
 * (bootstrapped as one of a cluster of the two ids involved), whose ready
 * batches are taken and advanced: that must never crash or fail.
 *
 * Built with -DFUZZ_SEEDS and without libFuzzer, this file is a program
 * that writes a few valid messages into the directory it is given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(e)                                                           \
	do {                                                               \
		if (!(e)) {                                                \
			fprintf(stderr, "fuzz_raft_msg: %s:%d: %s\n", __FILE__, \
			    __LINE__, #e);                                 \
			abort();                                           \
		}                                                          \
	} while (0)

static struct raft_entry ents[RAFT_MSG_MAX_ENTRIES];

static int
inside(const void *q, size_t n, const uint8_t *p, size_t size)
{
	const uint8_t *b = q;
	return n == 0 || (b >= p && b + n <= p + size);
}

static int
snap_read(void *ctx, const struct raft_snap_meta *m, uint64_t off, void *buf,
    size_t len)
{
	(void)ctx;
	(void)m;
	memset(buf, (int)(off & 0xff), len);
	return 0;
}

static void
step_into_node(const struct raft_msg *m)
{
	struct raft_config c;
	struct raft *r;
	memset(&c, 0, sizeof(c));
	raft_config_default(&c);
	c.id = m->to;
	c.seed = 1;
	c.snap_read = snap_read;
	c.max_snapshot = 1 << 16;
	CHECK(raft_open(&r, &c) == 0);
	if (m->from != m->to && (m->term & 1)) {
		struct raft_conf conf = {2, {{m->to, 1}, {m->from, 1}}};
		CHECK(raft_bootstrap(r, &conf) == 0);
	}
	int rc = raft_step(r, m);
	CHECK(rc == 0 || rc == BABL_EINPUT);
	struct raft_ready rd;
	for (int i = 0; i < 4 && raft_ready(r, &rd) > 0; i++) {
		struct wbuf b = {0};
		for (size_t j = 0; j < rd.nmsgs; j++)
			CHECK(raft_msg_encode(&b, &rd.msgs[j]) == 0);
		wbuf_free(&b);
		CHECK(raft_advance(r, &rd) == 0);
		CHECK(raft_tick(r) == 0);
	}
	raft_close(r);
}

#ifndef FUZZ_SEEDS
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact copy, so that ASan sees any read past the end. */
	uint8_t *p = malloc(size ? size : 1);
	CHECK(p);
	if (size)
		memcpy(p, data, size);
	struct raft_msg m;
	int rc = raft_msg_decode(p, size, &m, ents, RAFT_MSG_MAX_ENTRIES);
	CHECK(rc == 0 || rc == BABL_EPROTO || rc == BABL_ETOOBIG);
	if (rc == 0) {
		struct wbuf b = {0};
		CHECK(raft_msg_encode(&b, &m) == 0);
		CHECK(b.len == size && memcmp(b.p, p, size) == 0);
		wbuf_free(&b);
		for (uint32_t i = 0; i < m.nentries; i++)
			CHECK(inside(m.entries[i].data, m.entries[i].len, p, size));
		CHECK(inside(m.data, m.len, p, size));
		step_into_node(&m);
	}
	free(p);
	return 0;
}
#else
static void
put_seed(const char *dir, int n, const struct raft_msg *m)
{
	char path[4096];
	struct wbuf b = {0};
	CHECK(raft_msg_encode(&b, m) == 0);
	snprintf(path, sizeof path, "%s/seed-%02d", dir, n);
	FILE *fp = fopen(path, "wb");
	CHECK(fp);
	CHECK(fwrite(b.p, 1, b.len, fp) == b.len);
	fclose(fp);
	wbuf_free(&b);
}

int
main(int argc, char **argv)
{
	CHECK(argc == 2);
	uint8_t d[] = "hello";
	struct raft_entry e[2] = {{2, 1, RAFT_ENT_NORMAL, 5, d},
		{3, 1, RAFT_ENT_NOOP, 0, NULL}};
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.from = 2;
	m.to = 1;
	m.term = 3;
	for (uint8_t t = 1; t <= RAFT_MSG_MAX; t++) {
		m.type = t;
		m.index = 1;
		m.log_term = 1;
		m.commit = 1;
		m.nentries = 0;
		m.entries = NULL;
		if (t == RAFT_MSG_APPEND) {
			m.nentries = 2;
			m.entries = e;
		}
		if (t == RAFT_MSG_SNAP) {
			m.snap.index = 9;
			m.snap.term = 2;
			m.snap.size = 5;
			m.snap.conf.n = 2;
			m.snap.conf.s[0].id = 1;
			m.snap.conf.s[0].voter = 1;
			m.snap.conf.s[1].id = 2;
			m.snap.conf.s[1].voter = 1;
			m.len = 5;
			m.data = d;
		}
		put_seed(argv[1], t, &m);
	}
	return 0;
}
#endif
