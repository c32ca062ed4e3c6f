/* Modbus TCP load client for the proxy benchmark (bench/proxy.py): N
 * clients, one thread and one connection each, each reading the same
 * registers R times a second for S seconds with one request outstanding.
 * Prints one JSON line: reads, errors, latency percentiles in microseconds.
 *
 * Python client threads add 4-8 ms of their own tail on a loaded 2-core
 * machine; this client's tail is the server's plus the kernel's.
 *
 * The clients start spread over one period, as independent clients would,
 * not in bursts of N at once.
 *
 * Each answer's kernel receive time (SO_TIMESTAMPNS) also gives the client's
 * own wake-up delay: from the answer reaching the client's socket to recv()
 * returning it, time the server had no part in.  It is reported apart
 * ("client_wake_*") and subtracted in "excl_wake_*"; the latency figures
 * themselves are unchanged (send to full answer, as before).
 *
 * Usage: modbus-load HOST PORT UNIT FC ADDR COUNT [CLIENTS RATE SECONDS] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct job {
	struct sockaddr_in sa;
	unsigned unit, fc, addr, count;
	double rate, seconds;
	uint64_t start; /* first request: the clients are spread over one period */
	uint32_t *lat;  /* microseconds, one per read */
	uint32_t *wake; /* the client's own wake-up delay for that read, microseconds */
	size_t nlat, cap;
	unsigned errors;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads len bytes.  *wake_ns (when not NULL and the kernel gave a receive
 * time) is the time from the first bytes' arrival to recv() returning them. */
static int read_full(int fd, uint8_t *buf, size_t len, uint64_t *wake_ns)
{
	size_t got = 0;

	while (got < len) {
		char cbuf[CMSG_SPACE(sizeof(struct timespec))];
		struct iovec iov = { .iov_base = buf + got, .iov_len = len - got };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(fd, &mh, 0);
		uint64_t back = realtime_ns();

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); wake_ns && got == 0 && cm;
		     cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
				struct timespec ts;
				uint64_t at;

				memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
				at = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
				*wake_ns = back > at ? back - at : 0;
			}
		got += (size_t)n;
	}
	return 0;
}

static void *client(void *arg)
{
	struct job *j = arg;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t period = (uint64_t)(1e9 / j->rate), next, end;
	uint16_t tid = 0;

	if (fd < 0 || connect(fd, (struct sockaddr *)&j->sa, sizeof(j->sa)) < 0) {
		perror("modbus-load: connect");
		j->errors = (unsigned)j->cap;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	next = j->start;
	end = next + (uint64_t)(j->seconds * 1e9);
	sleep_until(next);
	while (now_ns() < end && j->nlat + j->errors < j->cap) {
		uint8_t q[12], a[260];
		uint64_t t0, wake = 0;
		size_t len;

		tid++;
		q[0] = (uint8_t)(tid >> 8), q[1] = (uint8_t)tid;
		q[2] = 0, q[3] = 0, q[4] = 0, q[5] = 6;
		q[6] = (uint8_t)j->unit, q[7] = (uint8_t)j->fc;
		q[8] = (uint8_t)(j->addr >> 8), q[9] = (uint8_t)j->addr;
		q[10] = (uint8_t)(j->count >> 8), q[11] = (uint8_t)j->count;
		t0 = now_ns();
		if (send(fd, q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q) ||
		    read_full(fd, a, 6, &wake) < 0)
			break;
		len = (size_t)a[4] << 8 | a[5];
		if (len < 2 || len > sizeof(a) - 6 || read_full(fd, a + 6, len, NULL) < 0)
			break;
		if (((unsigned)a[0] << 8 | a[1]) != tid || a[7] != j->fc ||
		    len != 3 + 2 * (size_t)j->count)
			j->errors++;
		else {
			j->wake[j->nlat] = (uint32_t)((wake + 500) / 1000);
			j->lat[j->nlat++] = (uint32_t)((now_ns() - t0 + 500) / 1000);
		}
		next += period;
		sleep_until(next);
	}
	close(fd);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);

	return n ? v[i < n ? i : n - 1] : 0;
}

int main(int argc, char **argv)
{
	unsigned clients = argc > 7 ? (unsigned)atoi(argv[7]) : 10;
	double rate = argc > 8 ? atof(argv[8]) : 10, seconds = argc > 9 ? atof(argv[9]) : 10;
	struct job *jobs;
	pthread_t *th;
	uint32_t *all, *wake, *excl;
	size_t n = 0, cap;
	unsigned errors = 0;

	if (argc < 7 || clients == 0 || clients > 1000 || rate <= 0 || seconds <= 0) {
		fprintf(stderr, "usage: modbus-load HOST PORT UNIT FC ADDR COUNT "
				"[CLIENTS RATE SECONDS]\n");
		return 2;
	}
	cap = (size_t)(rate * seconds) + 2;
	jobs = calloc(clients, sizeof(*jobs));
	th = calloc(clients, sizeof(*th));
	all = calloc(cap * clients, sizeof(*all));
	wake = calloc(cap * clients, sizeof(*wake));
	excl = calloc(cap * clients, sizeof(*excl));
	if (!jobs || !th || !all || !wake || !excl)
		return 1;
	for (unsigned i = 0; i < clients; i++) {
		struct job *j = &jobs[i];

		j->sa.sin_family = AF_INET;
		j->sa.sin_port = htons((uint16_t)atoi(argv[2]));
		if (inet_pton(AF_INET, argv[1], &j->sa.sin_addr) != 1) {
			fprintf(stderr, "modbus-load: %s is not an IPv4 address\n", argv[1]);
			return 2;
		}
		j->unit = (unsigned)atoi(argv[3]);
		j->fc = (unsigned)atoi(argv[4]);
		j->addr = (unsigned)atoi(argv[5]);
		j->count = (unsigned)atoi(argv[6]);
		j->rate = rate;
		j->seconds = seconds;
		j->cap = cap;
		j->lat = all + cap * i;
		j->wake = wake + cap * i;
	}
	for (unsigned i = 0; i < clients; i++)
		jobs[i].start = now_ns() + 100000000u + (uint64_t)(1e9 / rate) * i / clients;
	for (unsigned i = 0; i < clients; i++)
		if (pthread_create(&th[i], NULL, client, &jobs[i]) != 0)
			return 1;
	for (unsigned i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		for (size_t k = 0; k < jobs[i].nlat; k++)
			excl[n + k] = jobs[i].lat[k] > jobs[i].wake[k]
					      ? jobs[i].lat[k] - jobs[i].wake[k]
					      : 0;
		memmove(all + n, jobs[i].lat, jobs[i].nlat * sizeof(*all));
		memmove(wake + n, jobs[i].wake, jobs[i].nlat * sizeof(*wake));
		n += jobs[i].nlat;
		errors += jobs[i].errors;
	}
	qsort(all, n, sizeof(*all), cmp_u32);
	qsort(wake, n, sizeof(*wake), cmp_u32);
	qsort(excl, n, sizeof(*excl), cmp_u32);
	printf("{\"reads\": %zu, \"errors\": %u, \"p50_us\": %u, \"p90_us\": %u, \"p99_us\": %u, "
	       "\"p999_us\": %u, \"max_us\": %u, \"client_wake_p50_us\": %u, "
	       "\"client_wake_p99_us\": %u, \"excl_wake_p50_us\": %u, \"excl_wake_p99_us\": %u}\n",
	       n, errors, pct(all, n, 50), pct(all, n, 90), pct(all, n, 99), pct(all, n, 99.9),
	       n ? all[n - 1] : 0, pct(wake, n, 50), pct(wake, n, 99), pct(excl, n, 50),
	       pct(excl, n, 99));
	free(excl);
	free(wake);
	free(all);
	free(th);
	free(jobs);
	return 0;
}
