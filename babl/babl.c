/*
 * babl.c - the babl command: stream stdin to a service on the mesh and its
 * output back, and manage services (deploy, ls, info, log, status, keygen,
 * verify).  See babl(1) and DESIGN.md for the contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "conn.h"
#include "err.h"
#include "keys.h"
#include "paths.h"
#include "wire.h"

#define BABL_VERSION "0.1.0"

static const char usage_text[] =
"usage: babl [-n NODES] [-t SECS] [--id KEY] [--verify K] [--progress] SERVICE[@VERSION] [ARG...]\n"
"       babl deploy [LIMITS] NAME FILE.lua\n"
"       babl deploy [LIMITS] NAME -- PROGRAM [ARG...]\n"
"       babl ls | info NAME | log NAME | status | verify\n"
"       babl log export [--from N] > FILE\n"
"       babl keygen [--force]\n"
"       babl node add ID RAFT_URL CLIENT_URL | node remove ID\n"
"       babl call SERVICE [ARG...]\n"
"\n"
"Streams standard input to SERVICE on a mesh of meshd nodes and its output\n"
"back: stdout to stdout, stderr to stderr, and babl exits with the\n"
"service's status (128+N if a signal N killed it).\n"
"\n"
"Options (before SERVICE):\n"
"  -n, --node NODES  node URL, or a comma-separated list tried in turn\n"
"                    (default: $BABL_NODE, else the local meshd socket)\n"
"  -t, --timeout SECS  give up after SECS seconds (exit 75)\n"
"      --id KEY      run once per KEY: a retry gets the recorded outcome\n"
"      --verify K    release the output only once K executing nodes have\n"
"                    signed the same digest of the run (else exit 70)\n"
"      --progress    show bytes and rate on stderr\n"
"  -h, --help        this text;  --version  the version\n"
"\n"
"Verbs:\n"
"  deploy NAME ...   deploy or update a service, signed with your key;\n"
"                    LIMITS: --timeout SECS --cpu SECS --mem MB\n"
"                    --max-input MB --fsize MB --nproc N\n"
"  ls                list services          info NAME  owner, id, versions\n"
"  log NAME          the service's calls    status     the node's state (and\n"
"                                           every member's, on a mesh)\n"
"  log export [--from N]  the log as a self-verifying file, for\n"
"                    meshd replay --log FILE --data DIR\n"
"  verify            check the log's checksums and hash chain\n"
"  keygen [--force]  create your signing key\n"
"  node add ID RAFT_URL CLIENT_URL   add a member to a replicated mesh (it\n"
"                    catches up as a learner, then votes); node remove ID\n"
"  call SERVICE      call a service whose name is also a verb (babl call ls)\n"
"\n"
"Exit status: the service's own; babl's failures: 64 usage, 65 input\n"
"rejected, 69 no node or no such service, 70 internal error, 75 timeout,\n"
"76 protocol error, 77 not permitted.\n";

static const char *prog = "babl";
static char nodes[4096];
static int timeout_s;          /* -t: 0 = none */
static const char *idkey = "";
static unsigned verify_k;      /* --verify K */
static int progress;

static void __attribute__((format(printf, 2, 3), noreturn))
die(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
usage_exit(const char *why)
{
	if (why)
		fprintf(stderr, "%s: %s\n", prog, why);
	fputs(usage_text, stderr);
	exit(EX_USAGE_);
}

static struct conn *
connect_or_die(void)
{
	struct conn *c;
	char why[2048];
	int rc = conn_dial(&c, nodes, timeout_s * 1000, why, sizeof why);
	if (rc == 0)
		return c;
	if (rc == BABL_EUNREACH)
		die(EX_UNAVAILABLE_, "no node reachable: tried %s; start one with 'meshd' "
		    "(or 'make demo'), or name one with -n URL or BABL_NODE", why);
	die(babl_exit_code(rc), "%s", why);
}

/* Report an ERROR frame and exit with its sysexits code. */
static void __attribute__((noreturn))
die_error_frame(const struct wire_frame *f)
{
	struct wire_error e;
	if (wire_dec_error(f, &e))
		die(EX_PROTOCOL_, "malformed error from node");
	die(babl_exit_code(e.code), "%.*s", (int)e.msg.len, e.msg.p);
}

static void
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno == EPIPE) {
				/* Behave like any filter whose reader went away. */
				signal(SIGPIPE, SIG_DFL);
				raise(SIGPIPE);
			}
			die(EX_SOFTWARE_, "write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

static int
exit_status(const struct wire_frame *f, const char *what)
{
	struct wire_exit x;
	if (wire_dec_exit(f, &x))
		die(EX_PROTOCOL_, "malformed exit frame from node");
	if (x.msg.len)
		fprintf(stderr, "%s: %s: %.*s\n", prog, what, (int)x.msg.len, x.msg.p);
	if (x.kind == WIRE_SIGNALED)
		return 128 + (x.code & 127);
	return x.code & 255;
}

/* Receive the answer to a query or deploy: TEXT to stdout, then EXIT. */
static int
finish_request(struct conn *c, const char *what)
{
	struct wire_frame f;
	for (;;) {
		int rc = conn_recv(c, &f, timeout_s ? timeout_s * 1000 : -1);
		if (rc == BABL_ETIMEDOUT)
			die(EX_TEMPFAIL_, "%s: timed out after %d s", what, timeout_s);
		if (rc)
			die(babl_exit_code(rc), "%s: %s", what, babl_strerror(rc));
		switch (f.type) {
		case WIRE_TEXT:
			write_all(1, f.p, f.len);
			break;
		case WIRE_ERROR:
			die_error_frame(&f);
		case WIRE_EXIT:
			return exit_status(&f, what);
		default:
			die(EX_PROTOCOL_, "%s: unexpected frame 0x%02x from node", what, f.type);
		}
	}
}

static int
query2(uint8_t what, const char *arg, const char *arg2, const char *label)
{
	struct conn *c = connect_or_die();
	struct wbuf b = {0};
	if (wire_enc_query(&b, what, arg, arg2) || conn_send(c, b.p, b.len))
		die(EX_SOFTWARE_, "%s: could not send the request", label);
	wbuf_free(&b);
	int st = finish_request(c, label);
	conn_close(c);
	return st;
}

/* The text a node answers a query with, on c (closed after); NULL if the
 * node does not answer. */
static char *
query_text_on(struct conn *c, uint8_t what)
{
	struct wbuf b = {0}, out = {0};
	struct wire_frame f;
	int ok = wire_enc_query(&b, what, "", "") == 0 && conn_send(c, b.p, b.len) == 0;
	wbuf_free(&b);
	while (ok && conn_recv(c, &f, 5000) == 0 && f.type == WIRE_TEXT)
		ok = wb_raw(&out, f.p, f.len) == 0;
	conn_close(c);
	if (!ok || wb_u8(&out, 0)) {
		wbuf_free(&out);
		return NULL;
	}
	return (char *)out.p;
}

static char *
query_text(const char *url, uint8_t what)
{
	struct conn *c;
	char why[512];
	if (conn_dial(&c, url, 2000, why, sizeof why))
		return NULL;
	return query_text_on(c, what);
}

/* The value after "key:" on a line of a status text ("" if none). */
static void
status_field(const char *text, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	out[0] = 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) == 0 && l[kl] == ':') {
			const char *v = l + kl + 1;
			while (*v == ' ')
				v++;
			size_t len = strcspn(v, "\n");
			snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), v);
			return;
		}
	}
}

/*
 * babl status: the node's own account; on a replicated mesh, then one line
 * per member: id, address, role, term, commit, applied, lag behind the
 * highest commit seen.  The members are asked at once, each on a thread of
 * its own, so that a member that is down or frozen costs one wait (the
 * dial's 2 s), not one per member.
 */
struct member {
	char id[32], url[512], role[64], raft[256], div[64];
	uint64_t commit, applied;
	char *text; /* its answer, NULL if it gave none */
	pthread_t th;
	int asked;
};

static void *
member_ask(void *arg)
{
	struct member *m = arg;
	m->text = query_text(m->url, WIRE_Q_STATUS);
	return NULL;
}

static int
status(void)
{
	struct conn *c = connect_or_die();
	char url[1024];
	snprintf(url, sizeof url, "%s", conn_url(c));
	char *self = query_text_on(c, WIRE_Q_STATUS);
	if (!self)
		die(EX_UNAVAILABLE_, "status: %s did not answer", url);
	write_all(1, (const uint8_t *)self, strlen(self));
	struct member m[16];
	int nm = 0;
	uint64_t top = 0;
	memset(m, 0, sizeof m);
	for (const char *l = self; l && *l && nm < 16; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "member:", 7) == 0 &&
		    sscanf(l + 7, " %31s %511s", m[nm].id, m[nm].url) == 2)
			nm++;
	}
	free(self);
	if (!nm)
		return 0;
	for (int i = 0; i < nm; i++)
		m[i].asked = pthread_create(&m[i].th, NULL, member_ask, &m[i]) == 0;
	for (int i = 0; i < nm; i++) {
		if (m[i].asked)
			pthread_join(m[i].th, NULL);
		else
			member_ask(&m[i]); /* (no thread to be had: asked here) */
		const char *t = m[i].text;
		if (!t)
			continue;
		status_field(t, "role", m[i].role, sizeof m[i].role);
		status_field(t, "raft", m[i].raft, sizeof m[i].raft);
		status_field(t, "diverged", m[i].div, sizeof m[i].div);
		m[i].div[strcspn(m[i].div, " ")] = 0;
		sscanf(m[i].raft, "commit %" SCNu64 ", applied %" SCNu64, &m[i].commit, &m[i].applied);
		if (m[i].commit > top)
			top = m[i].commit;
	}
	printf("\n%-4s %-28s %-26s %10s %10s %8s %9s\n", "id", "address", "role", "commit", "applied",
	    "lag", "diverged");
	for (int i = 0; i < nm; i++) {
		if (!m[i].text) {
			printf("%-4s %-28s %-26s\n", m[i].id, m[i].url, "unreachable");
			continue;
		}
		printf("%-4s %-28s %-26s %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %9s\n", m[i].id, m[i].url,
		    m[i].role, m[i].commit, m[i].applied, top > m[i].applied ? top - m[i].applied : 0,
		    m[i].div[0] ? m[i].div : "-");
		free(m[i].text);
	}
	return 0;
}

static int
query(uint8_t what, const char *arg, const char *label)
{
	return query2(what, arg, "", label);
}

/* ---- calls ---- */

struct call_ctx {
	struct conn *c;
	volatile int cancelled; /* signal number that cancelled, or 0 */
	volatile int done;
	struct timespec t0;
};

static void *
stdin_pump(void *arg)
{
	struct call_ctx *x = arg;
	static uint8_t buf[WIRE_CHUNK];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) /* end, or no stdin at all (closed fd): both end input */
			break;
		if (conn_send_data(x->c, WIRE_DATA, buf, (size_t)n))
			return NULL;
	}
	conn_send_data(x->c, WIRE_EOF, NULL, 0);
	return NULL;
}

static void *
signal_waiter(void *arg)
{
	struct call_ctx *x = arg;
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (x->cancelled) { /* a second interrupt: leave at once */
			signal(sig, SIG_DFL);
			pthread_sigmask(SIG_UNBLOCK, &set, NULL);
			raise(sig);
		}
		x->cancelled = sig;
		conn_send_data(x->c, WIRE_CANCEL, NULL, 0);
	}
	return NULL;
}

static double
elapsed(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
show_progress(struct call_ctx *x, int final)
{
	uint64_t s, r;
	conn_counts(x->c, &s, &r);
	double t = elapsed(&x->t0);
	/* The rate is of the input sent, the way a pipeline is usually paced. */
	fprintf(stderr, "\r%s: sent %.1f MiB, received %.1f MiB, %.1f MB/s in %.1f s%s", prog,
	    s / 1048576.0, r / 1048576.0, t > 0 ? (double)s / 1e6 / t : 0.0, t,
	    final ? "\n" : "   ");
}

static void *
progress_loop(void *arg)
{
	struct call_ctx *x = arg;
	while (!x->done) {
		struct timespec ts = {0, 500 * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (!x->done)
			show_progress(x, 0);
	}
	return NULL;
}

static int
call_service(const char *service, int argc, char **argv)
{
	struct call_ctx x = {0};
	struct wire_call m = {0};
	struct wbuf b = {0};
	pthread_t tin, tsig, tprog;
	sigset_t set;

	if (argc > WIRE_MAX_ARGS)
		die(EX_USAGE_, "too many arguments (at most %d)", WIRE_MAX_ARGS);
	m.target = (struct wire_str){service, strlen(service)};
	m.idkey = (struct wire_str){idkey, strlen(idkey)};
	m.flags = verify_k & WIRE_CALL_VERIFY;
	m.timeout_ms = (uint32_t)timeout_s * 1000u;
	m.nargs = (uint32_t)argc;
	for (int i = 0; i < argc; i++) {
		if (strlen(argv[i]) > WIRE_MAX_STR)
			die(EX_USAGE_, "argument %d is too long", i + 1);
		m.args[i] = (struct wire_str){argv[i], strlen(argv[i])};
	}

	/* Signals are taken by one thread so that Ctrl-C becomes CANCEL. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	x.c = connect_or_die();
	clock_gettime(CLOCK_MONOTONIC, &x.t0);
	if (wire_enc_call(&b, &m) || conn_send(x.c, b.p, b.len))
		die(EX_UNAVAILABLE_, "%s: the node closed the connection", service);
	wbuf_free(&b);
	pthread_create(&tsig, NULL, signal_waiter, &x);
	pthread_create(&tin, NULL, stdin_pump, &x);
	if (progress)
		pthread_create(&tprog, NULL, progress_loop, &x);

	struct wire_frame f;
	int status;
	for (;;) {
		int wait_ms = -1;
		if (timeout_s) {
			double left = timeout_s - elapsed(&x.t0);
			wait_ms = left > 0 ? (int)(left * 1000) + 1 : 0;
		}
		int rc = conn_recv(x.c, &f, wait_ms);
		if (rc == BABL_ETIMEDOUT) {
			conn_send_data(x.c, WIRE_CANCEL, NULL, 0);
			die(EX_TEMPFAIL_, "%s: timed out after %d s", service, timeout_s);
		}
		if (rc == BABL_ECLOSED && x.cancelled)
			exit(128 + x.cancelled);
		if (rc == BABL_ECLOSED)
			die(EX_UNAVAILABLE_, "%s: the node closed the connection before the call ended", service);
		if (rc)
			die(babl_exit_code(rc), "%s: %s", service, babl_strerror(rc));
		if (f.type == WIRE_OUT) {
			write_all(1, f.p, f.len);
		} else if (f.type == WIRE_ERRB) {
			write_all(2, f.p, f.len);
		} else if (f.type == WIRE_EXIT) {
			if (x.cancelled) {
				status = 128 + x.cancelled;
				break;
			}
			status = exit_status(&f, service);
			break;
		} else if (f.type == WIRE_ERROR) {
			die_error_frame(&f);
		} else {
			die(EX_PROTOCOL_, "%s: unexpected frame 0x%02x from node", service, f.type);
		}
	}
	x.done = 1;
	if (progress)
		show_progress(&x, 1);
	/* The stdin pump may still be blocked in read(); exit without it. */
	fflush(stdout);
	_exit(status);
}

/* ---- deploy ---- */

static uint64_t
parse_num(const char *s, const char *what, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v > max)
		die(EX_USAGE_, "%s: '%s' is not a number up to %llu", what, s,
		    (unsigned long long)max);
	return v;
}

static void
load_or_create_key(uint8_t pk[32], uint8_t sk[64])
{
	char path[4096];
	if (keys_path(path, sizeof path))
		die(EX_USAGE_, "cannot find a place for the key (set HOME or BABL_KEY)");
	int rc = keys_load(path, pk, sk);
	if (rc == BABL_ENOENT) {
		rc = keys_generate(path, 0, pk, sk);
		if (rc)
			die(EX_SOFTWARE_, "cannot create a key at %s: %s", path, babl_strerror(rc));
		fprintf(stderr, "%s: created a new signing key at %s\n", prog, path);
		return;
	}
	if (rc)
		die(EX_SOFTWARE_, "cannot read the key at %s: %s", path, babl_strerror(rc));
}

/* The absolute path of PROGRAM as the shell would find it. */
static char *
find_program(const char *name)
{
	char buf[PATH_MAX];
	if (strchr(name, '/'))
		return realpath(name, NULL);
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, name);
		if (access(buf, X_OK) == 0)
			return realpath(buf, NULL);
		path += n + (path[n] == ':');
	}
	return NULL;
}

static char *
read_small_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(EX_DATAERR_, "%s: %s", path, strerror(errno));
	char *p = malloc(max + 1);
	size_t n = 0;
	ssize_t r;
	while (p && (r = read(fd, p + n, max + 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (!p)
		die(EX_SOFTWARE_, "out of memory");
	if (n > max)
		die(EX_DATAERR_, "%s: larger than %zu bytes", path, max);
	p[n] = 0;
	*len = n;
	return p;
}

static int
deploy(int argc, char **argv)
{
	static const struct option opts[] = {
		{"timeout", required_argument, 0, 't'}, {"cpu", required_argument, 0, 'c'},
		{"mem", required_argument, 0, 'm'}, {"max-input", required_argument, 0, 'i'},
		{"fsize", required_argument, 0, 'f'}, {"nproc", required_argument, 0, 'p'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	struct bundle b = {0};
	int o;
	bundle_default_limits(&b.lim);
	optind = 1;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 't': b.lim.timeout_ms = (uint32_t)parse_num(optarg, "--timeout", 86400) * 1000; break;
		case 'c': b.lim.cpu_secs = (uint32_t)parse_num(optarg, "--cpu", 86400); break;
		case 'm': b.lim.mem_bytes = parse_num(optarg, "--mem", 1 << 20) << 20; break;
		case 'i': b.lim.max_input = parse_num(optarg, "--max-input", 1ull << 30) << 20; break;
		case 'f': b.lim.fsize = parse_num(optarg, "--fsize", 1 << 24) << 20; break;
		case 'p': b.lim.nproc = (uint32_t)parse_num(optarg, "--nproc", 4096); break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: usage_exit(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage_exit("deploy needs NAME and FILE.lua, or NAME -- PROGRAM [ARG...]");
	if (!bundle_name_ok(argv[0]))
		die(EX_USAGE_, "'%s' is not a valid service name (letters, digits, '_', '-', '.'; at most 64)", argv[0]);
	b.name = argv[0];
	if (strcmp(argv[1], "--") == 0) {
		if (argc < 3)
			usage_exit("deploy NAME -- needs a PROGRAM");
		b.kind = BUNDLE_NATIVE;
		b.path = find_program(argv[2]);
		if (!b.path)
			die(EX_DATAERR_, "%s: program not found", argv[2]);
		int rc = bundle_hash_file(b.path, b.prog_hash);
		if (rc)
			die(EX_DATAERR_, "%s: cannot read: %s", b.path, babl_strerror(rc));
		b.nargs = (uint32_t)(argc - 3);
		b.args = argv + 3;
	} else if (argc == 2) {
		b.kind = BUNDLE_LUA;
		const char *slash = strrchr(argv[1], '/');
		b.script = (char *)(slash ? slash + 1 : argv[1]);
		b.source = read_small_file(argv[1], BUNDLE_MAX_SOURCE, &b.source_len);
	} else {
		usage_exit("deploy NAME FILE.lua takes no further arguments (use -- for a program)");
	}

	uint8_t pk[32], sk[64], sid[32], bid[32], msg[BUNDLE_MSG_LEN], sig[64];
	char owner_hex[65];
	load_or_create_key(pk, sk);
	hex_encode(pk, 32, owner_hex);

	/* Ask for the current head of this owner's service, to chain onto. */
	struct conn *c = connect_or_die();
	struct wbuf w = {0};
	struct wire_frame f;
	struct wire_head head;
	if (wire_enc_query(&w, WIRE_Q_HEAD, b.name, owner_hex) || conn_send(c, w.p, w.len))
		die(EX_SOFTWARE_, "deploy: could not send the request");
	int rc = conn_recv(c, &f, 10000);
	if (rc)
		die(babl_exit_code(rc), "deploy: %s", babl_strerror(rc));
	if (f.type == WIRE_ERROR)
		die_error_frame(&f);
	if (wire_dec_head(&f, &head))
		die(EX_PROTOCOL_, "deploy: malformed answer from node");
	uint8_t prev[32];
	uint64_t version = head.version + 1;
	memcpy(prev, head.vid, 32);

	wbuf_reset(&w);
	if (bundle_encode(&b, &w))
		die(EX_DATAERR_, "deploy: the bundle is too large");
	bundle_hash(w.p, w.len, bid);
	bundle_service_id(pk, b.name, sid);
	bundle_deploy_msg(sid, version, bid, prev, msg);
	bundle_sign(msg, sk, sig);
	sodium_memzero(sk, sizeof sk);

	struct wire_deploy d = {{(const char *)w.p, w.len}, pk, version, prev, sig};
	struct wbuf out = {0};
	if (wire_enc_deploy(&out, &d))
		die(EX_DATAERR_, "deploy: the bundle is too large to send");
	if (conn_send(c, out.p, out.len))
		die(EX_UNAVAILABLE_, "deploy: the node closed the connection");
	int st = finish_request(c, "deploy");
	conn_close(c);
	wbuf_free(&w);
	wbuf_free(&out);
	if (b.kind == BUNDLE_NATIVE)
		free(b.path);
	else
		free(b.source);
	return st;
}

static int
keygen(int argc, char **argv)
{
	int force = argc > 1 && strcmp(argv[1], "--force") == 0;
	if (argc > 1 + force)
		usage_exit("keygen takes only --force");
	char path[4096], hex[65];
	uint8_t pk[32], sk[64];
	if (keys_path(path, sizeof path))
		die(EX_USAGE_, "cannot find a place for the key (set HOME or BABL_KEY)");
	int rc = keys_generate(path, force, pk, sk);
	if (rc == BABL_EEXIST)
		die(EX_DATAERR_, "%s exists; use 'babl keygen --force' to replace it", path);
	if (rc)
		die(EX_SOFTWARE_, "%s: %s", path, babl_strerror(rc));
	hex_encode(pk, 32, hex);
	printf("key: %s\npublic: %s\n", path, hex);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"node", required_argument, 0, 'n'}, {"timeout", required_argument, 0, 't'},
		{"id", required_argument, 0, 'I'}, {"progress", no_argument, 0, 'P'},
		{"verify", required_argument, 0, 'K'},
		{"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'},
		{0, 0, 0, 0}};
	int o;
	const char *env = getenv("BABL_NODE");

	if (sodium_init() < 0)
		die(EX_SOFTWARE_, "libsodium failed to start");
	signal(SIGPIPE, SIG_IGN); /* EPIPE is handled where it happens */
	if (env && *env)
		snprintf(nodes, sizeof nodes, "%s", env);
	else if (paths_default_url(nodes, sizeof nodes))
		die(EX_USAGE_, "cannot work out the local node's address");

	/* '+': options stop at the service name; the rest are its arguments. */
	while ((o = getopt_long(argc, argv, "+n:t:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			if (strlen(optarg) >= sizeof nodes)
				die(EX_USAGE_, "-n: too long");
			snprintf(nodes, sizeof nodes, "%s", optarg);
			break;
		case 't':
			timeout_s = (int)parse_num(optarg, "-t", 7 * 86400);
			break;
		case 'I':
			if (!*optarg || strlen(optarg) > 1024)
				die(EX_USAGE_, "--id: give a key of 1 to 1024 bytes");
			idkey = optarg;
			break;
		case 'K':
			verify_k = (unsigned)parse_num(optarg, "--verify", 16);
			if (!verify_k)
				die(EX_USAGE_, "--verify: give K from 1 to 16");
			break;
		case 'P':
			progress = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("babl %s (protocol %d)\n", BABL_VERSION, WIRE_VERSION);
			return 0;
		default:
			usage_exit(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage_exit("no service named");
	const char *verb = argv[0];
	if (strcmp(verb, "call") == 0) {
		if (argc < 2)
			usage_exit("call needs a SERVICE");
		return call_service(argv[1], argc - 2, argv + 2);
	}
	if (strcmp(verb, "deploy") == 0)
		return deploy(argc, argv);
	if (strcmp(verb, "keygen") == 0)
		return keygen(argc, argv);
	if (strcmp(verb, "ls") == 0 && argc == 1)
		return query(WIRE_Q_LS, "", "ls");
	if (strcmp(verb, "status") == 0 && argc == 1)
		return status();
	if (strcmp(verb, "node") == 0 && argc == 5 && strcmp(argv[1], "add") == 0) {
		char args[3 * 1024];
		if (snprintf(args, sizeof args, "%s %s %s", argv[2], argv[3], argv[4]) >= (int)sizeof args)
			usage_exit("node add: arguments too long");
		return query2(WIRE_Q_NODE, "add", args, "node add");
	}
	if (strcmp(verb, "node") == 0 && argc == 3 && strcmp(argv[1], "remove") == 0)
		return query2(WIRE_Q_NODE, "remove", argv[2], "node remove");
	if (strcmp(verb, "node") == 0)
		usage_exit("node add ID RAFT_URL CLIENT_URL | node remove ID");
	if (strcmp(verb, "verify") == 0 && argc <= 2)
		return query(WIRE_Q_VERIFY, argc == 2 ? argv[1] : "", "verify");
	if (strcmp(verb, "log") == 0 && argc >= 2 && strcmp(argv[1], "export") == 0) {
		const char *from = "1";
		if (argc == 4 && strcmp(argv[2], "--from") == 0)
			from = argv[3];
		else if (argc != 2)
			usage_exit("log export takes only --from N");
		parse_num(from, "--from", UINT64_MAX);
		if (isatty(1))
			die(EX_USAGE_, "log export writes a binary file: redirect it (babl log export > mesh.log)");
		return query(WIRE_Q_EXPORT, from, "log export");
	}
	if ((strcmp(verb, "info") == 0 || strcmp(verb, "log") == 0)) {
		if (argc != 2)
			usage_exit("info and log take one service NAME");
		return query(verb[0] == 'i' ? WIRE_Q_INFO : WIRE_Q_LOG, argv[1], verb);
	}
	if (!strcmp(verb, "ls") || !strcmp(verb, "status"))
		usage_exit("ls and status take no arguments (to call a service of that name: babl call NAME)");
	return call_service(verb, argc - 1, argv + 1);
}
