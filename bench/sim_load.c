/* egw-sim-load: a Modbus/TCP load generator for bench/sim.py.
 *
 *   egw-sim-load PORT THREADS SECONDS FC ADDR COUNT [UNIT [DEPTH]]
 *
 * THREADS connections to 127.0.0.1:PORT, each sending reads back to back
 * with DEPTH requests outstanding (default 1, as a plain Modbus master does;
 * Modbus/TCP allows more, told apart by transaction id), built and checked
 * with egw's codec (transaction id, function, byte count).  Prints
 * "<requests> <seconds> <requests/s>" and exits 0, or 1 on any bad answer. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/time.h"
#include "modbus/codec.h"

struct worker {
	pthread_t th;
	uint16_t port;
	usec_t end;
	struct mb_request q;
	unsigned depth;
	uint64_t done;
	int err;
};

static int connect_local(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[64 * MB_TCP_ADU_MAX];
	uint8_t *reqs = NULL;
	struct mb_response *resp = malloc(sizeof(*resp));
	int fd = connect_local(w->port);
	if (fd < 0 || !resp) {
		w->err = fd < 0 ? fd : -ENOMEM;
		if (fd >= 0)
			close(fd);
		free(resp);
		return NULL;
	}
	reqs = malloc((size_t)w->depth * MB_TCP_ADU_MAX);
	if (!reqs) {
		w->err = -ENOMEM;
		goto out;
	}
	while (now_usec() < w->end) {
		uint16_t first = (uint16_t)(w->q.tid + 1);
		size_t rlen = 0;
		for (unsigned k = 0; k < w->depth; k++) {
			w->q.tid++;
			int n = mb_tcp_build_request(&w->q, reqs + rlen, MB_TCP_ADU_MAX);
			if (n < 0) {
				w->err = n;
				goto out;
			}
			rlen += (size_t)n;
		}
		if (send(fd, reqs, rlen, MSG_NOSIGNAL) != (ssize_t)rlen) {
			w->err = -EIO;
			goto out;
		}
		size_t len = 0;
		for (unsigned k = 0; k < w->depth; k++) {
			struct mb_request q = w->q;
			q.tid = (uint16_t)(first + k);
			for (;;) {
				size_t used = 0;
				int p = len ? mb_tcp_parse_response(buf, len, &q, resp, &used) : -EAGAIN;
				if (p == 0) {
					memmove(buf, buf + used, len - used);
					len -= used;
					break;
				}
				if (p != -EAGAIN) {
					w->err = p;
					goto out;
				}
				ssize_t r = recv(fd, buf + len, sizeof(buf) - len, 0);
				if (r <= 0) {
					w->err = -EIO;
					goto out;
				}
				len += (size_t)r;
			}
			w->done++;
		}
	}
out:
	close(fd);
	free(reqs);
	free(resp);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: egw-sim-load PORT THREADS SECONDS FC ADDR COUNT [UNIT [DEPTH]]\n");
		return 2;
	}
	unsigned nthreads = (unsigned)atoi(argv[2]);
	double secs = atof(argv[3]);
	unsigned depth = argc > 8 ? (unsigned)atoi(argv[8]) : 1;
	if (nthreads == 0 || nthreads > 64 || !(secs > 0) || depth == 0 || depth > 32)
		return 2;
	struct worker *ws = calloc(nthreads, sizeof(*ws));
	if (!ws)
		return 1;
	usec_t start = now_usec();
	usec_t end = start + (usec_t)(secs * 1e6);
	for (unsigned i = 0; i < nthreads; i++) {
		ws[i] = (struct worker){
			.port = (uint16_t)atoi(argv[1]),
			.end = end,
			.depth = depth,
			.q = { .unit = (uint8_t)(argc > 7 ? atoi(argv[7]) : 1),
			       .fc = (uint8_t)atoi(argv[4]), .addr = (uint16_t)atoi(argv[5]),
			       .count = (uint16_t)atoi(argv[6]), .tid = (uint16_t)(i * 1000) },
		};
		if (pthread_create(&ws[i].th, NULL, work, &ws[i]) != 0)
			return 1;
	}
	uint64_t total = 0;
	int err = 0;
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		total += ws[i].done;
		if (ws[i].err && !err)
			err = ws[i].err;
	}
	double el = (double)(now_usec() - start) / 1e6;
	free(ws);
	if (err) {
		fprintf(stderr, "egw-sim-load: %s\n", egw_strerror(err));
		return 1;
	}
	printf("%llu %.3f %.0f\n", (unsigned long long)total, el, (double)total / el);
	return 0;
}
