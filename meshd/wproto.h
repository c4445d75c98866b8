/*
 * wproto.h - messages between meshd and a Lua worker (meshd-lua), over a
 * pair of pipes: the worker's stdin carries meshd's messages, its stdout
 * the worker's.  Framing is the wire framing (wire.h: a 4-byte length, a
 * type byte, fields); these types never appear on client connections.
 * Pure: encoders append to a wbuf, decoders borrow from the frame.
 *
 *  meshd -> worker:  SCRIPT once, then CALL, INPUT, EOF, KILL, KV, KEYS, ACK
 *  worker -> meshd:  OUT, KVGET, DONE
 * Every message after SCRIPT names its call by the call's log index.
 */
#ifndef MESHD_WPROTO_H
#define MESHD_WPROTO_H

#include <stdint.h>

#include "wire.h"

enum wp_type {
	WP_SCRIPT = 0x60,
	WP_CALL = 0x61,
	WP_INPUT = 0x62,
	WP_EOF = 0x63,
	WP_KILL = 0x64,
	WP_KV = 0x65,
	WP_KEYS = 0x66,
	WP_ACK = 0x67,   /* a ref whose bytes are a u64: output bytes meshd has passed on */
	WP_OUT = 0x70,
	WP_KVGET = 0x71,
	WP_DONE = 0x72,
};

/* Output flow control: a call with more than this many output bytes that
 * meshd has not acknowledged (ACK) pauses in its worker; meshd acknowledges
 * in steps of at least half of it, so a small call needs no ACK at all. */
#define WP_OUT_WINDOW (512u * 1024)
/* INPUT and OUT chunks this large go from where they are to the pipe (a
 * writev after their frame's head), not through a copy in a buffer. */
#define WP_WRITE_DIRECT (16u * 1024)
#define WP_MAX_WRITES_BYTES (256u * 1024) /* a call's kv writes, in all */
#define WP_MAX_KEY 1024
#define WP_MAX_KEYS 10000

struct wp_script {
	struct wire_str chunkname, source;
	uint64_t mem_bytes, instructions, max_string;
};
struct wp_call {
	uint64_t call;
	struct wire_str service, reqid;
	uint64_t time_ms, seed;
	uint32_t nargs;
	struct wire_str args[WIRE_MAX_ARGS];
};
/* INPUT, EOF, KILL, OUT, ACK: the call, then bytes (INPUT, OUT; ACK: a
 * big-endian u64, the count of the call's output bytes passed on) */
struct wp_ref {
	uint64_t call;
	uint8_t stream;        /* OUT: 1 stdout, 2 stderr */
	struct wire_str bytes; /* INPUT, OUT */
};
struct wp_kv {
	uint64_t call;
	uint8_t found;
	struct wire_str value;
};
struct wp_kvget {
	uint64_t call;
	uint8_t keys; /* 1: list keys with this prefix */
	struct wire_str key;
};
struct wp_done {
	uint64_t call;
	int32_t status;
	uint64_t insns, mem_peak;
	uint32_t nwrites;
	struct wire_str writes; /* nwrites of (u8 deleted, str key, str value) */
};

int wp_enc_script(struct wbuf *b, const struct wp_script *m);
int wp_dec_script(const struct wire_frame *f, struct wp_script *m);
int wp_enc_call(struct wbuf *b, const struct wp_call *m);
int wp_dec_call(const struct wire_frame *f, struct wp_call *m);
/* INPUT, EOF, KILL, OUT, ACK */
int wp_enc_ref(struct wbuf *b, uint8_t type, uint64_t call, uint8_t stream,
    const void *p, size_t n);
/* The frame wp_enc_ref would encode but for its n trailing bytes, which
 * the caller writes right after it (to send them without copying). */
int wp_enc_ref_head(struct wbuf *b, uint8_t type, uint64_t call, uint8_t stream,
    size_t n);
int wp_dec_ref(const struct wire_frame *f, struct wp_ref *m);
int wp_enc_kv(struct wbuf *b, uint64_t call, int found, const void *v, size_t vl);
int wp_dec_kv(const struct wire_frame *f, struct wp_kv *m);
/* KEYS: the call, u32 count, then strings. */
int wp_enc_keys_begin(struct wbuf *b, uint64_t call, size_t *mark);
int wp_enc_keys_add(struct wbuf *b, const void *k, size_t kl);
int wp_enc_keys_end(struct wbuf *b, size_t mark, uint32_t count);
int wp_dec_keys(const struct wire_frame *f, uint64_t *call, uint32_t *count,
    struct rd *rest);
int wp_enc_kvget(struct wbuf *b, uint64_t call, int keys, const void *k, size_t kl);
int wp_dec_kvget(const struct wire_frame *f, struct wp_kvget *m);
/* DONE: writes are appended with wp_enc_write between begin and end. */
int wp_enc_done_begin(struct wbuf *b, uint64_t call, int32_t status,
    uint64_t insns, uint64_t mem_peak, size_t *mark);
int wp_enc_write(struct wbuf *b, int deleted, const void *k, size_t kl,
    const void *v, size_t vl);
int wp_enc_done_end(struct wbuf *b, size_t mark, uint32_t nwrites);
int wp_dec_done(const struct wire_frame *f, struct wp_done *m);
/* Walk a write list (DONE's writes, or an OUTCOME's): 1 and the next
 * write, 0 at the end, BABL_EPROTO if malformed. */
int wp_next_write(struct rd *r, int *deleted, struct wire_str *k,
    struct wire_str *v);

#endif
