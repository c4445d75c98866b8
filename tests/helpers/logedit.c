/*
 * logedit.c - add to an exported log (`babl log export`) what a faulty
 * mesh could put in it, for tests.
 *
 *   logedit dup-outcome IN OUT TAIL
 *
 * Reads IN, finds its last OUTCOME entry, and writes OUT: all of IN and
 * one more entry, a second OUTCOME for the same call that says the run was
 * cut short by a restart (killed, no writes), chained after IN's last
 * entry.  TAIL gets the new entry alone, as an export that starts after
 * IN's last entry (for `meshd replay` into a node rebuilt from IN).  Prints
 * the call's log index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "wire.h"

#define MAX_FILE (256u << 20)

static int
put_entry(FILE *f, const uint8_t hdr[ENTRY_HDR], const struct wbuf *payload)
{
	uint8_t lenb[4];
	be32_put(lenb, ENTRY_HDR + (uint32_t)payload->len);
	return fwrite(lenb, 4, 1, f) == 1 && fwrite(hdr, ENTRY_HDR, 1, f) == 1 &&
	    (!payload->len || fwrite(payload->p, payload->len, 1, f) == 1) ? 0 : -1;
}

int
main(int argc, char **argv)
{
	if (argc != 5 || strcmp(argv[1], "dup-outcome") != 0) {
		fprintf(stderr, "usage: logedit dup-outcome IN OUT TAIL\n");
		return 2;
	}
	FILE *in = fopen(argv[2], "rb");
	uint8_t *buf = malloc(MAX_FILE);
	size_t len;
	if (!in || !buf) {
		perror(argv[2]);
		return 1;
	}
	len = fread(buf, 1, MAX_FILE, in);
	fclose(in);
	if (len < 8 || memcmp(buf, ENTRY_FILE_MAGIC, 8) != 0) {
		fprintf(stderr, "logedit: %s is not an exported log\n", argv[2]);
		return 1;
	}
	struct entry e, last = {0}, out = {0};
	int found = 0;
	for (size_t off = 8; off < len;) {
		uint32_t n = off + 4 <= len ? be32_get(buf + off) : 0;
		if (!n || off + 4 + n > len || entry_open(buf + off + 4, n, &e)) {
			fprintf(stderr, "logedit: %s: a bad entry at byte %zu\n", argv[2], off);
			return 1;
		}
		if (e.type == ENT_OUTCOME && ent_dec_outcome(&e, &(struct ent_outcome){0}) == 0) {
			out = e;
			found = 1;
		}
		last = e;
		off += 4 + n;
	}
	struct ent_outcome o;
	if (!found || ent_dec_outcome(&out, &o)) {
		fprintf(stderr, "logedit: %s has no OUTCOME entry\n", argv[2]);
		return 1;
	}
	o.kind = WIRE_SIGNALED;
	o.code = 9;
	o.why = ENT_WHY_RESTART;
	o.nwrites = 0;
	o.writes = (struct wire_str){0};
	struct wbuf p = {0};
	if (ent_enc_outcome(&p, &o))
		return 1;
	struct entry d = {.type = ENT_OUTCOME, .term = last.term, .index = last.index + 1,
	    .len = (uint32_t)p.len};
	memcpy(d.prev, last.hash, 32);
	uint8_t hdr[ENTRY_HDR];
	struct iovec iov = {p.p, p.len};
	entry_seal(&d, &iov, 1, hdr);
	FILE *f = fopen(argv[3], "wb"), *t = fopen(argv[4], "wb");
	if (!f || !t || fwrite(buf, len, 1, f) != 1 || put_entry(f, hdr, &p) ||
	    fwrite(ENTRY_FILE_MAGIC, 8, 1, t) != 1 || put_entry(t, hdr, &p) || fclose(f) ||
	    fclose(t)) {
		perror("logedit: write");
		return 1;
	}
	printf("%llu\n", (unsigned long long)o.call);
	wbuf_free(&p);
	free(buf);
	return 0;
}
