/*
 * entry.h - log entries: the header with checksum and hash chain, and the
 * payload of each entry type.  Pure: no I/O; unit-tested and fuzzed.
 *
 * An entry is an 88-byte header followed by its payload:
 *
 *	0  u8  format (3)        1  u8  type        2  u16 zero
 *	4  u32 payload length    8  u64 term        16 u64 index
 *	24 prev[32]: hash of the entry before (zeros for index 1)
 *	56 hash[32]: BLAKE3 (hash.h) of bytes 0..56 and the payload
 *
 * Entries of formats 1 and 2, written before format 3, are the same but for
 * their hash: BLAKE2b-256 (1), SHA-256 (2).  They are still read (and
 * checked), never written.
 *
 * The hash is the entry's checksum and its link in the chain: changing any
 * byte of an entry, or of any entry before it, breaks a check.
 */
#ifndef MESHD_ENTRY_H
#define MESHD_ENTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wire.h"

#define ENTRY_HDR 88
#define ENTRY_FORMAT 3     /* what entry_seal writes */
#define ENTRY_FORMAT_SHA 2 /* read only */
#define ENTRY_FORMAT_B2 1  /* read only */
#define ENTRY_MAX_PAYLOAD (WIRE_MAX_BODY + 1024)

enum entry_type {
	ENT_DEPLOY = 1,  /* a signed new version of a service */
	ENT_CALL = 2,    /* a call starts: service version, args, time, seed */
	ENT_INPUT = 3,   /* a chunk of a call's stdin */
	ENT_EOF = 4,     /* a call's stdin ended */
	ENT_CANCEL = 5,  /* a call was cancelled */
	ENT_OUTCOME = 6, /* a call ended: status and byte counts */
	ENT_NOOP = 7,    /* nothing; marks a term or a restart */
	ENT_MEMBER = 8,  /* a mesh member's addresses come or go */
	ENT_DIGEST = 9,  /* an executing node's signed run digests (guard.h) */
	ENT_REPORT = 10, /* a guard found a run that differs (guard.h) */
	ENT_OUTPUT = 11, /* a chunk of an --id call's output, recorded mesh-wide */
	ENT_MAX = 11,
};

struct entry {
	uint8_t type;
	uint64_t term, index;
	uint8_t prev[32];
	uint8_t hash[32];
	uint32_t len;          /* payload length */
	const uint8_t *payload; /* borrowed */
};

const char *entry_type_name(uint8_t type);

/*
 * Compute e->hash over the header fields and the payload given as iovecs
 * (whose total must be e->len), then write the 88-byte header.
 */
void entry_seal(struct entry *e, const struct iovec *iov, int niov,
    uint8_t hdr[ENTRY_HDR]);

/*
 * Parse a stored entry and check its checksum.  e->payload borrows from p.
 * Returns 0, BABL_EPROTO if it is not an entry at all (short, bad format or
 * type, length mismatch), BABL_ECORRUPT if the checksum fails.
 */
int entry_open(const void *p, size_t n, struct entry *e);
/*
 * The same without the checksum: the header's fields only (BABL_EPROTO if
 * it is not an entry).  For a reader that needs only entries' shapes and
 * checks the data of each where it is used (rstore_load_lazy).
 */
int entry_parse(const void *p, size_t n, struct entry *e);

/* Payloads.  Decoders borrow from the payload and return 0 or BABL_EPROTO. */

struct ent_deploy {
	uint64_t time_ms;
	struct wire_deploy d;
};
int ent_enc_deploy(struct wbuf *b, uint64_t time_ms, const struct wire_deploy *d);
int ent_dec_deploy(const struct entry *e, struct ent_deploy *m);

#define ENT_REQID_LEN 16
struct ent_call {
	uint8_t sid[32], vid[32]; /* service and version resolved at proposal */
	uint64_t time_ms, seed;   /* fixed by the proposer */
	uint8_t reqid[ENT_REQID_LEN];
	uint32_t timeout_ms;      /* the caller's, 0 for the service's */
	struct wire_str idkey;
	uint32_t nargs;
	struct wire_str args[WIRE_MAX_ARGS];
};
int ent_enc_call(struct wbuf *b, const struct ent_call *m);
int ent_dec_call(const struct entry *e, struct ent_call *m);

/* INPUT, EOF and CANCEL begin with the index of their call's CALL entry. */
#define ENT_INPUT_PREFIX 8
void ent_input_prefix(uint8_t p[8], uint64_t call);
int ent_dec_ref(const struct entry *e, uint64_t *call, const uint8_t **rest,
    size_t *rest_len);

enum ent_reason {
	ENT_CANCEL_CLIENT = 1,  /* the caller cancelled or went away */
	ENT_CANCEL_RESTART = 2, /* the node restarted mid-call */
	ENT_CANCEL_SHUTDOWN = 3,
};

struct ent_outcome {
	uint64_t call;
	uint8_t kind;   /* WIRE_EXITED or WIRE_SIGNALED */
	int32_t code;
	uint8_t why;    /* enum ent_why */
	uint64_t in_bytes, out_bytes, err_bytes;
	uint32_t dur_ms;
	uint8_t flags;  /* ENT_OUT_*: how an --id call's output was recorded */
	/* A Lua call's key-value writes, applied with the outcome: nwrites of
	 * (u8 deleted, str key, str value), see wp_next_write. */
	uint32_t nwrites;
	struct wire_str writes;
};
enum ent_why {
	ENT_WHY_NONE = 0,
	ENT_WHY_TIMEOUT = 1,
	ENT_WHY_CANCELLED = 2,
	ENT_WHY_INPUT_LIMIT = 3,
	ENT_WHY_SPAWN = 4,     /* could not start */
	ENT_WHY_PROGRAM = 5,   /* program missing or hash mismatch */
	ENT_WHY_RESTART = 6,
	ENT_WHY_WORKER = 7,    /* the Lua worker died */
};
#define ENT_OUT_PARTIAL 1 /* too much output to record: no --id record */
#define ENT_OUT_UNOWNED 2 /* run by a node that did not record it: applies as cancelled */
int ent_enc_outcome(struct wbuf *b, const struct ent_outcome *m);

/* OUTPUT: chunk seq (from 0) of an --id call's stdout (1) or stderr (2),
 * proposed by the leader that runs it, so every member holds what a retry
 * gets. */
struct ent_output {
	uint64_t call, seq;
	uint8_t stream;
	const uint8_t *p; /* len bytes, borrowed */
	size_t len;
};
int ent_enc_output(struct wbuf *b, const struct ent_output *m);
int ent_dec_output(const struct entry *e, struct ent_output *m);

/* A member of a replicated mesh: where peers and clients reach it. */
enum ent_member_op { ENT_MEMBER_ADD = 1, ENT_MEMBER_REMOVE = 2 };
struct ent_member {
	uint8_t op;
	uint8_t guard;  /* 1: a guard, a learner that is never promoted */
	uint64_t id;
	struct wire_str raft_url, client_url; /* empty for a removal */
};
#define ENT_MEMBER_URL_MAX 255
int ent_enc_member(struct wbuf *b, const struct ent_member *m);
int ent_dec_member(const struct entry *e, struct ent_member *m);
int ent_dec_outcome(const struct entry *e, struct ent_outcome *m);

/*
 * A log exported as a file: the 8 bytes ENTRY_FILE_MAGIC, then each entry
 * as a 4-byte big-endian length and the entry's stored bytes, in index
 * order.  The entries' checksums and hash chain make it self-verifying.
 */
#define ENTRY_FILE_MAGIC "BABLLOG1"

#endif
