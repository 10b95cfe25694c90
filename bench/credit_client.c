/* bench.credit's load generator: a closed loop of CONCURRENCY keep-alive HTTP/1.1
 * connections over IPv4, each sending its next request as soon as the previous answer has
 * been read, until every request of REQUESTS_FILE has been sent once (each carries its own
 * MUNGE credential, which munged accepts once). Same loop as bench/credit_client.py's, a few
 * microseconds of CPU per request instead of ~100.
 *
 *   credit_client HOST PORT CONCURRENCY REQUESTS_FILE RESULTS_FILE
 *
 * REQUESTS_FILE: records of a little-endian uint32 length then that many request bytes.
 * RESULTS_FILE: one record per answered request, in order of completion: uint64 latency
 * (ns, from the first byte written to the last byte read) and uint32 HTTP status.
 * stdout: one JSON line: wall_s (first write to last answer), cpu_s (user + system of this
 * process over the same span), answered, failed (requests without an answer: connection
 * closed or broken, or 30 s without any answer).
 * Answers must carry Content-Length (the API's always do). Built by bench/credit_client.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

typedef struct {
    int fd;
    long req;          /* index of the request in flight, -1 when idle */
    size_t sent;       /* bytes of it written so far */
    uint64_t start_ns;
    char buf[BUF];
    size_t have;
} conn_t;

static char **reqs;
static uint32_t *lens;
static long nreqs, next_req, answered, alive;
static uint64_t *lat_ns;
static uint32_t *statuses;
static int ep;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("requests file");
    long cap = 1024;
    reqs = malloc(cap * sizeof *reqs);
    lens = malloc(cap * sizeof *lens);
    uint32_t len;
    while (fread(&len, 4, 1, f) == 1) {
        if (nreqs == cap) {
            cap *= 2;
            reqs = realloc(reqs, cap * sizeof *reqs);
            lens = realloc(lens, cap * sizeof *lens);
        }
        reqs[nreqs] = malloc(len);
        if (fread(reqs[nreqs], 1, len, f) != len) die("truncated requests file");
        lens[nreqs++] = len;
    }
    fclose(f);
    lat_ns = calloc(nreqs ? nreqs : 1, sizeof *lat_ns);
    statuses = calloc(nreqs ? nreqs : 1, sizeof *statuses);
}

static void watch(conn_t *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
}

/* Write what is left of the request in flight; 0 when done or waiting, -1 on error. */
static int push(conn_t *c) {
    while (c->sent < lens[c->req]) {
        ssize_t n = write(c->fd, reqs[c->req] + c->sent, lens[c->req] - c->sent);
        if (n < 0) {
            if (errno == EAGAIN) {
                watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
                return 0;
            }
            return -1;
        }
        c->sent += (size_t)n;
    }
    return 0;
}

static int send_next(conn_t *c) {
    if (next_req >= nreqs) {
        c->req = -1;
        return 0;
    }
    c->req = next_req++;
    c->sent = 0;
    c->start_ns = now_ns();
    return push(c);
}

static void drop(conn_t *c) {
    alive--;
    c->req = -1;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Length of the complete response at the start of c->buf, 0 if incomplete, -1 if bad. */
static long complete_response(conn_t *c, uint32_t *status) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end) return c->have == BUF ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.", 7)) return -1;
    *status = (uint32_t)atoi(c->buf + 9);
    long length = -1;
    for (char *p = c->buf; p < end;) {
        char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - p) > 15 && !strncasecmp(p, "content-length:", 15))
            length = atol(p + 15);
        p = eol + 2;
    }
    if (length < 0 || head + (size_t)length > BUF) return -1;
    return c->have >= head + (size_t)length ? (long)(head + (size_t)length) : 0;
}

static void readable(conn_t *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, BUF - c->have);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            drop(c);
            return;
        }
        c->have += (size_t)n;
        uint32_t status;
        long used;
        while ((used = complete_response(c, &status)) > 0) {
            if (c->req < 0) {  /* an answer nobody asked for */
                drop(c);
                return;
            }
            lat_ns[answered] = now_ns() - c->start_ns;
            statuses[answered++] = status;
            memmove(c->buf, c->buf + used, c->have - (size_t)used);
            c->have -= (size_t)used;
            if (send_next(c) < 0) {
                drop(c);
                return;
            }
        }
        if (used < 0) {
            drop(c);
            return;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONCURRENCY REQUESTS_FILE RESULTS_FILE\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) die("host (IPv4 address)");
    int concurrency = atoi(argv[3]);
    load(argv[4]);
    conn_t *conns = calloc((size_t)concurrency, sizeof *conns);
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < concurrency; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        c->req = -1;
        watch(c, EPOLLIN, EPOLL_CTL_ADD);
        alive++;
    }
    struct rusage ru0, ru;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t started = now_ns();
    for (int i = 0; i < concurrency; i++)
        if (send_next(&conns[i]) < 0) drop(&conns[i]);
    struct epoll_event events[256];
    while (answered < nreqs && alive > 0) {
        int n = epoll_wait(ep, events, 256, 30000);
        if (n == 0) break; /* 30 s without any answer: give up, report what came back */
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (events[i].events & EPOLLOUT) {
                if (push(c) < 0) {
                    drop(c);
                    continue;
                }
                if (c->sent == lens[c->req]) watch(c, EPOLLIN, EPOLL_CTL_MOD);
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(c);
        }
        if (next_req >= nreqs) { /* stop when every request sent has been answered */
            int busy = 0;
            for (int i = 0; i < concurrency && !busy; i++) busy = conns[i].req >= 0;
            if (!busy) break;
        }
    }
    uint64_t wall = now_ns() - started;
    FILE *out = fopen(argv[5], "wb");
    if (!out) die("results file");
    for (long i = 0; i < answered; i++) {
        fwrite(&lat_ns[i], 8, 1, out);
        fwrite(&statuses[i], 4, 1, out);
    }
    fclose(out);
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"wall_s\": %.6f, \"cpu_s\": %.6f, \"answered\": %ld, \"failed\": %ld}\n",
           wall / 1e9, cpu, answered, nreqs - answered);
    return 0;
}
