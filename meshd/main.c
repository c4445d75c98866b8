/*
 * main.c - meshd: flags, then node_run.  See meshd(8).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "err.h"
#include "logmsg.h"
#include "node.h"
#include "paths.h"
#include "sbx.h"

#define MESHD_VERSION "0.1.0"

static const char usage_text[] =
"usage: meshd [-d] [--data DIR] [--listen URL]... [OPTIONS]\n"
"       meshd --check [--data DIR]\n"
"       meshd replay --log FILE --data DIR\n"
"       meshd replay --log FILE --check\n"
"Runs one babl mesh node in the foreground, logging to stderr (systemd style).\n"
"  --data DIR           log and state (default $XDG_DATA_HOME/babl, else\n"
"                       ~/.local/share/babl)\n"
"  --listen URL         ipc:// or tcp:// URL to accept clients on; repeatable\n"
"                       (default: the local socket babl uses:\n"
"                       ipc://$XDG_RUNTIME_DIR/babl/meshd.sock, /run/babl/meshd.sock\n"
"                       as root, else /tmp/babl-UID/meshd.sock)\n"
"  -d, --debug          log more detail\n"
"  -n, --check          verify the log (checksums, hash chain) and exit:\n"
"                       0 good, 1 bad\n"
"  --max-calls N        concurrent calls (default 512)\n"
"  --id-retention SECS  keep --id outcomes this long (default 86400)\n"
"  --sandbox LAYERS     confinement layers allowed: \"all\" (default) or a comma\n"
"                       list of seccomp,rlimits,userns,setuid,netns,pidns,mntns,ipcns\n"
"  --map-size MB        LMDB map size (default 65536)\n"
"Replication (a mesh of several nodes; see scripts/cluster):\n"
"  --node-id N          this node's id in the mesh (1 and up)\n"
"  --peer ID,RAFT_URL,CLIENT_URL\n"
"                       a member of the mesh (give every member, this node\n"
"                       too): where its peers and its clients reach it\n"
"  --bootstrap          with no replicated state yet, start a new mesh whose\n"
"                       voters are the --peer members (give it to each of them)\n"
"  --join URL           with no replicated state yet, ask the mesh at URL (any\n"
"                       member's client URL) to add this node: it catches up\n"
"                       as a learner, then votes (--peer gives its own URLs)\n"
"  --guard              with --join: join as a guard, a member that never\n"
"                       votes, re-runs every call and reports runs whose\n"
"                       digest differs from the ones members signed\n"
"  --no-digests         sign no run digests (guards then cannot check this\n"
"                       node; for measuring what digests cost)\n"
"  --tick MS            one Raft tick (default 20; elections after 25-50 ticks)\n"
"  -h, --help, --version\n"
"SIGTERM or SIGINT: stop cleanly (running calls are cancelled and logged as such).\n"
"replay: rebuild a node's log and state in DIR from a file made by\n"
"`babl log export`; a damaged file is rejected, naming its first bad entry.\n"
"With --check instead of --data: run every call of the file again, as a guard,\n"
"and report each run whose digest differs from the one its nodes signed\n"
"(exit 1 if any).\n";

static unsigned long long
num(const char *s, const char *what, unsigned long long min, unsigned long long max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "meshd: %s: '%s' is not a number from %llu to %llu\n", what, s, min, max);
		exit(64);
	}
	return v;
}

static unsigned
parse_layers(const char *s)
{
	static const struct { const char *name; unsigned bit; } tab[] = {
		{"seccomp", SBX_SECCOMP}, {"rlimits", SBX_RLIMITS}, {"userns", SBX_USERNS},
		{"setuid", SBX_SETUID}, {"netns", SBX_NETNS}, {"pidns", SBX_PIDNS},
		{"mntns", SBX_MNTNS}, {"ipcns", SBX_IPCNS}};
	if (strcmp(s, "all") == 0)
		return ~0u;
	unsigned bits = 0;
	char *copy = strdup(s), *save = NULL;
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		unsigned i;
		for (i = 0; i < sizeof tab / sizeof tab[0]; i++)
			if (strcmp(w, tab[i].name) == 0)
				break;
		if (i == sizeof tab / sizeof tab[0]) {
			fprintf(stderr, "meshd: --sandbox: unknown layer '%s'\n", w);
			exit(64);
		}
		bits |= tab[i].bit;
	}
	free(copy);
	return bits;
}

/* --peer ID,RAFT_URL,CLIENT_URL */
static int
parse_peer(char *arg, struct node_peer *p)
{
	char *c1 = strchr(arg, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
	if (!c1 || !c2 || strchr(c2 + 1, ',')) {
		fprintf(stderr, "meshd: --peer %s: give ID,RAFT_URL,CLIENT_URL\n", arg);
		return -1;
	}
	*c1 = *c2 = 0;
	p->id = num(arg, "--peer id", 1, UINT32_MAX);
	p->raft_url = c1 + 1;
	p->client_url = c2 + 1;
	for (int i = 0; i < 2; i++) {
		const char *u = i ? p->client_url : p->raft_url;
		if (strncmp(u, "ipc://", 6) && strncmp(u, "tcp://", 6)) {
			fprintf(stderr, "meshd: --peer: '%s' is not an ipc:// or tcp:// URL\n", u);
			return -1;
		}
	}
	return 0;
}

/* A helper program: beside this binary (a build tree), else the install
 * path; env names a variable that overrides both. */
static void
find_helper(char *out, size_t n, const char *name, const char *var)
{
	char self[PATH_MAX];
	const char *env = getenv(var);
	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	if (len > 0) {
		self[len] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			if ((size_t)snprintf(out, n, "%s/%s", self, name) < n &&
			    access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, n, "%s/%s", BABL_LIBEXECDIR, name);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, 0, 'D'}, {"listen", required_argument, 0, 'L'},
		{"debug", no_argument, 0, 'd'}, {"check", no_argument, 0, 'n'},
		{"max-calls", required_argument, 0, 'M'}, {"id-retention", required_argument, 0, 'R'},
		{"sandbox", required_argument, 0, 'S'}, {"map-size", required_argument, 0, 'm'},
		{"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'},
		{"log", required_argument, 0, 'l'}, {"node-id", required_argument, 0, 'I'},
		{"peer", required_argument, 0, 'P'}, {"bootstrap", no_argument, 0, 'B'},
		{"tick", required_argument, 0, 'T'}, {"join", required_argument, 0, 'J'},
		{"guard", no_argument, 0, 'G'}, {"no-digests", no_argument, 0, 'X'},
		{0, 0, 0, 0}};
	static char data[PATH_MAX], url[PATH_MAX], launcher[PATH_MAX], luaw[PATH_MAX];
	struct node_config cfg = {0};
	int o, check = 0;

	/*
	 * Input and output move in chunks of a few hundred KiB, and Raft
	 * messages of up to 4 MiB (batches of such chunks) come and go: keep
	 * such buffers in the heap, reused, rather than mapped and unmapped
	 * (and zeroed by the kernel) for every chunk and message.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	cfg.max_calls = 512;
	cfg.id_retention_ms = 86400ull * 1000;
	cfg.sandbox_want = ~0u;
	cfg.map_bytes = 65536ull << 20;
	const char *logfile = NULL;
	int replay = argc > 1 && strcmp(argv[1], "replay") == 0;
	if (replay) {
		argv++;
		argc--;
	}
	while ((o = getopt_long(argc, argv, "dnh", opts, NULL)) != -1) {
		switch (o) {
		case 'D': cfg.data_dir = optarg; break;
		case 'L':
			if (cfg.nlisten == NODE_MAX_LISTEN) {
				fprintf(stderr, "meshd: at most %d --listen\n", NODE_MAX_LISTEN);
				return 64;
			}
			if (strncmp(optarg, "ipc://", 6) && strncmp(optarg, "tcp://", 6) &&
			    strncmp(optarg, "tls+tcp://", 10)) {
				fprintf(stderr, "meshd: --listen %s: give an ipc:// or tcp:// URL\n", optarg);
				return 64;
			}
			cfg.listen[cfg.nlisten++] = optarg;
			break;
		case 'd': log_verbose = 1; break;
		case 'n': check = 1; break;
		case 'M': cfg.max_calls = (unsigned)num(optarg, "--max-calls", 1, SBX_SLOTS); break;
		case 'R': cfg.id_retention_ms = num(optarg, "--id-retention", 1, 10ull * 365 * 86400) * 1000; break;
		case 'S': cfg.sandbox_want = parse_layers(optarg); break;
		case 'm': cfg.map_bytes = num(optarg, "--map-size", 1, 1ull << 24) << 20; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V': printf("meshd %s\n", MESHD_VERSION); return 0;
		case 'l': logfile = optarg; break;
		case 'I': cfg.node_id = num(optarg, "--node-id", 1, UINT32_MAX); break;
		case 'B': cfg.bootstrap = 1; break;
		case 'J': cfg.join = optarg; break;
		case 'G': cfg.guard = 1; break;
		case 'X': cfg.no_digests = 1; break;
		case 'T': cfg.tick_ms = (unsigned)num(optarg, "--tick", 1, 1000); break;
		case 'P':
			if (cfg.npeers == NODE_MAX_PEERS || parse_peer(optarg, &cfg.peers[cfg.npeers]))
				return 64;
			cfg.npeers++;
			break;
		default: fputs(usage_text, stderr); return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "meshd: unexpected argument '%s'\n", argv[optind]);
		fputs(usage_text, stderr);
		return 64;
	}
	if (!cfg.data_dir) {
		if (paths_data_dir(data, sizeof data)) {
			fprintf(stderr, "meshd: no data directory: give --data DIR or set HOME\n");
			return 64;
		}
		cfg.data_dir = data;
	}
	if (replay != (logfile != NULL)) {
		fprintf(stderr, "meshd: %s\n", replay ? "replay needs --log FILE" :
		    "--log goes with replay: meshd replay --log FILE --data DIR");
		return 64;
	}
	if (replay && check) {
		find_helper(launcher, sizeof launcher, "meshd-sandbox", "MESHD_SANDBOX");
		find_helper(luaw, sizeof luaw, "meshd-lua", "MESHD_LUA");
		cfg.launcher = launcher;
		cfg.lua_worker = luaw;
		cfg.check_log = logfile;
		cfg.tick_ms = 20;
		return node_check_log(&cfg);
	}
	if (replay)
		return node_import(logfile, cfg.data_dir, cfg.map_bytes);
	if (check)
		return node_check(cfg.data_dir, cfg.map_bytes);
	if (cfg.join && cfg.bootstrap) {
		fprintf(stderr, "meshd: --join and --bootstrap exclude each other: a new mesh, or a node for one\n");
		return 64;
	}
	if (cfg.guard && !cfg.join) {
		fprintf(stderr, "meshd: --guard goes with --join URL (a guard joins a running mesh)\n");
		return 64;
	}
	if (cfg.join && !cfg.node_id) {
		fprintf(stderr, "meshd: --join needs --node-id and --peer ID,RAFT_URL,CLIENT_URL for this node\n");
		return 64;
	}
	if (cfg.npeers && !cfg.node_id) {
		fprintf(stderr, "meshd: --peer needs --node-id\n");
		return 64;
	}
	if (cfg.node_id) {
		int self = -1;
		for (int i = 0; i < cfg.npeers; i++) {
			for (int j = 0; j < i; j++)
				if (cfg.peers[j].id == cfg.peers[i].id) {
					fprintf(stderr, "meshd: --peer %" PRIu64 " is given twice\n", cfg.peers[i].id);
					return 64;
				}
			if (cfg.peers[i].id == cfg.node_id)
				self = i;
		}
		if (self < 0) {
			fprintf(stderr, "meshd: --node-id %" PRIu64 " is not among the --peer members "
			    "(list every member, this node too)\n", cfg.node_id);
			return 64;
		}
		/* Clients reach this node on its own client URL. */
		int have = 0;
		for (int i = 0; i < cfg.nlisten; i++)
			have |= strcmp(cfg.listen[i], cfg.peers[self].client_url) == 0;
		if (!have && cfg.nlisten < NODE_MAX_LISTEN)
			cfg.listen[cfg.nlisten++] = cfg.peers[self].client_url;
	}
	if (!cfg.tick_ms)
		cfg.tick_ms = 20;
	if (!cfg.nlisten) {
		if (paths_default_url(url, sizeof url)) {
			fprintf(stderr, "meshd: cannot work out the local socket; give --listen\n");
			return 64;
		}
		cfg.listen[cfg.nlisten++] = url;
	}
	find_helper(launcher, sizeof launcher, "meshd-sandbox", "MESHD_SANDBOX");
	find_helper(luaw, sizeof luaw, "meshd-lua", "MESHD_LUA");
	cfg.launcher = launcher;
	cfg.lua_worker = luaw;
	int rc = node_run(&cfg);
	/*
	 * The node has closed its sockets; nng frees some of what they held
	 * (pipes, a redial in flight) on its own threads.  Wait for that, so
	 * that nothing is left half-freed at exit, where a leak check would
	 * report it.
	 */
	nng_fini();
	return rc;
}
