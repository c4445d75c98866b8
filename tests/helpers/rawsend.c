/*
 * rawsend.c - send raw bytes to a TCP port and report the answer, for tests.
 *
 *   rawsend PORT [-w SECS] < BYTES
 *	connect to 127.0.0.1:PORT, write stdin's bytes (stopping quietly if
 *	the peer closes first), then wait up to SECS (default 5) for the peer
 *	to answer and close.  Prints one line per frame received
 *	("frame WELCOME", "frame ERROR -8: text", "frame 0xNN"; the frames
 *	in a CHAN frame as "frame CHAN 3 ERROR -8: text", and an empty one
 *	as "frame CHAN 3 end") and then
 *	"closed by peer" or "still open after SECS s".
 *   rawsend PORT -i N [-w SECS]
 *	open N connections that send nothing; wait up to SECS (default 30)
 *	for the peer to close them.  Prints "closed K of N".
 *
 * Exit status: 0, or 1 if it could not connect or something failed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "wire.h"

static int
dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("rawsend: connect");
		exit(1);
	}
	return fd;
}

static double
now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static const char *tname(uint8_t t);

/* One line per frame in p[0..len); those in a CHAN frame after "CHAN id ". */
static void
print_frames(const uint8_t *p, size_t len, const char *pre)
{
	size_t off = 0;
	while (off < len) {
		struct wire_frame f;
		size_t used, n;
		uint32_t id;
		const uint8_t *q;
		int rc = wire_next(p + off, len - off, 0, &f, &used);
		if (rc) {
			printf("unparsable bytes from peer (%s)\n", babl_strerror(rc));
			break;
		}
		if (f.type == WIRE_ERROR) {
			struct wire_error e;
			if (wire_dec_error(&f, &e) == 0)
				printf("frame %sERROR %d: %.*s\n", pre, e.code, (int)e.msg.len, e.msg.p);
			else
				printf("frame %sERROR (malformed)\n", pre);
		} else if (!*pre && wire_dec_chan(&f, &id, &q, &n) == 0) {
			char cpre[32];
			snprintf(cpre, sizeof cpre, "CHAN %u ", id);
			if (n)
				print_frames(q, n, cpre);
			else
				printf("frame %send\n", cpre);
		} else if (tname(f.type)) {
			printf("frame %s%s\n", pre, tname(f.type));
		} else {
			printf("frame %s0x%02x\n", pre, f.type);
		}
		off += used;
	}
}

static const char *
tname(uint8_t t)
{
	switch (t) {
	case WIRE_WELCOME: return "WELCOME";
	case WIRE_ERROR: return "ERROR";
	case WIRE_EXIT: return "EXIT";
	case WIRE_TEXT: return "TEXT";
	case WIRE_HEAD: return "HEAD";
	case WIRE_OUT: return "OUT";
	default: return NULL;
	}
}

static int
idle(int port, int n, int secs)
{
	int *fds = calloc((size_t)n, sizeof *fds);
	int open = n, closed = 0;
	for (int i = 0; i < n; i++)
		fds[i] = dial(port);
	double end = now() + secs;
	while (open && now() < end) {
		struct pollfd p[1024];
		int k = 0;
		for (int i = 0; i < n && k < 1024; i++)
			if (fds[i] >= 0)
				p[k++] = (struct pollfd){fds[i], POLLIN, 0};
		if (poll(p, (nfds_t)k, 200) <= 0)
			continue;
		for (int j = 0; j < k; j++) {
			if (!p[j].revents)
				continue;
			char buf[4096];
			ssize_t r = read(p[j].fd, buf, sizeof buf);
			if (r > 0)
				continue; /* an error frame, perhaps; wait for the close */
			for (int i = 0; i < n; i++)
				if (fds[i] == p[j].fd) {
					close(fds[i]);
					fds[i] = -1;
				}
			open--;
			closed++;
		}
	}
	printf("closed %d of %d\n", closed, n);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return 0;
}

int
main(int argc, char **argv)
{
	int port, secs = -1, nidle = 0, o;
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fprintf(stderr, "usage: rawsend PORT [-w SECS] [-i N]\n");
		return 2;
	}
	port = atoi(argv[1]);
	optind = 2;
	while ((o = getopt(argc, argv, "w:i:")) != -1) {
		if (o == 'w')
			secs = atoi(optarg);
		else if (o == 'i')
			nidle = atoi(optarg);
		else
			return 2;
	}
	if (nidle)
		return idle(port, nidle, secs < 0 ? 30 : secs);
	if (secs < 0)
		secs = 5;

	int fd = dial(port);
	static uint8_t buf[1 << 16];
	ssize_t r;
	size_t sent = 0;
	int stopped = 0;
	while (!stopped && (r = read(0, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(fd, buf + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				stopped = 1;
				break;
			}
			off += w;
			sent += (size_t)w;
		}
	}
	if (stopped)
		printf("write stopped after %zu bytes (%s)\n", sent, strerror(errno));

	/* Collect the answer. */
	size_t cap = 1 << 20, len = 0;
	uint8_t *in = malloc(cap);
	double end = now() + secs;
	int closed = 0;
	while (now() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		int ms = (int)((end - now()) * 1000) + 1;
		if (poll(&p, 1, ms) <= 0)
			continue;
		r = read(fd, in + len, cap - len);
		if (r <= 0) {
			closed = 1;
			break;
		}
		len += (size_t)r;
		if (len == cap)
			break;
	}
	print_frames(in, len, "");
	if (closed)
		printf("closed by peer\n");
	else
		printf("still open after %d s\n", secs);
	close(fd);
	free(in);
	return 0;
}
