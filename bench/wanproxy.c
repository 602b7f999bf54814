/* wanproxy.c: a delaying TCP proxy that stands for a long network path (this kernel has no
 * netem). The same model and options as bench/wanproxy.py, in C for speed (the Python one
 * tops out near 0.5 GB/s here); bench/run.sh compiles it with `cc -O2 -pthread`.
 *
 *   wanproxy --listen PORT --to HOST:PORT [--rtt MS] [--window BYTES] [--rate BITS_PER_S]
 *            [--ready FILE]
 *
 * Model, for every connection and each direction separately:
 * - latency: bytes read from one side are written to the other RTT/2 after they arrived
 *   (pipelined: a reader thread timestamps chunks, a writer thread releases each at its time);
 * - window: a chunk counts as in flight from its arrival until RTT later (RTT/2 there, the
 *   acknowledgement RTT/2 back); the reader stops reading while WINDOW bytes are in flight,
 *   so one connection tops out at WINDOW/RTT, like one TCP stream on a long path;
 * - link rate: one token bucket shared by all connections and both directions (a chunk
 *   leaves no earlier than the bucket allows, 1 ms of burst); 0 means no cap.
 * Bytes (TLS included) pass through untouched; EOF is forwarded after the data before it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static double g_delay;       /* one way, seconds */
static long long g_window;   /* bytes, 0 = none */
static double g_rate;        /* bytes per second, 0 = none */
static pthread_mutex_t g_link = PTHREAD_MUTEX_INITIALIZER;
static double g_next_free;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
    struct timespec ts;
    if (t <= now()) return;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static double link_release_at(double t, size_t n) {
    double start, r;
    if (g_rate <= 0) return t;
    pthread_mutex_lock(&g_link);
    start = t > g_next_free - 0.001 ? t : g_next_free - 0.001;
    if (start > g_next_free) g_next_free = start;
    g_next_free += (double)n / g_rate;
    r = g_next_free - 0.001;
    pthread_mutex_unlock(&g_link);
    return r > t ? r : t;
}

struct chunk {
    double release;
    size_t n;
    struct chunk *next;
    char data[];
};

struct credit {
    double at;
    size_t n;
    struct credit *next;
};

struct conn;

struct dir {
    int from, to;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct chunk *head, *tail;
    int eof;
    struct credit *ch, *ct; /* reader only */
    long long inflight;     /* reader only */
    struct conn *c;
};

struct conn {
    int a, b;
    atomic_int refs;
    atomic_int broken;
    struct dir d[2];
};

static void conn_put(struct conn *c) {
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        close(c->a);
        close(c->b);
        for (int i = 0; i < 2; i++) {
            pthread_mutex_destroy(&c->d[i].mu);
            pthread_cond_destroy(&c->d[i].cv);
            while (c->d[i].ch) { struct credit *x = c->d[i].ch; c->d[i].ch = x->next; free(x); }
        }
        free(c);
    }
}

static void conn_break(struct conn *c) {
    if (atomic_exchange(&c->broken, 1) == 0) {
        shutdown(c->a, SHUT_RDWR);
        shutdown(c->b, SHUT_RDWR);
    }
}

static void *reader(void *arg) {
    struct dir *d = arg;
    for (;;) {
        if (g_window > 0) {
            while (d->inflight >= g_window) {
                struct credit *x = d->ch;
                sleep_until(x->at);
                while (d->ch && d->ch->at <= now()) {
                    x = d->ch;
                    d->ch = x->next;
                    if (!d->ch) d->ct = NULL;
                    d->inflight -= (long long)x->n;
                    free(x);
                }
            }
        }
        struct chunk *k = malloc(sizeof *k + CHUNK);
        if (!k) { conn_break(d->c); break; }
        ssize_t n = read(d->from, k->data, CHUNK);
        if (n < 0 && errno == EINTR) { free(k); continue; }
        if (n <= 0) {
            free(k);
            if (n < 0) conn_break(d->c);
            break;
        }
        double t = now();
        k->n = (size_t)n;
        k->release = link_release_at(t + g_delay, k->n);
        k->next = NULL;
        if (g_window > 0) {
            /* drop credits already due, then add this chunk's */
            while (d->ch && d->ch->at <= t) {
                struct credit *x = d->ch;
                d->ch = x->next;
                if (!d->ch) d->ct = NULL;
                d->inflight -= (long long)x->n;
                free(x);
            }
            struct credit *cr = malloc(sizeof *cr);
            if (!cr) { free(k); conn_break(d->c); break; }
            cr->at = k->release > t + 2 * g_delay ? k->release : t + 2 * g_delay;
            cr->n = k->n;
            cr->next = NULL;
            if (d->ct) d->ct->next = cr; else d->ch = cr;
            d->ct = cr;
            d->inflight += n;
        }
        pthread_mutex_lock(&d->mu);
        if (d->tail) d->tail->next = k; else d->head = k;
        d->tail = k;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    pthread_mutex_lock(&d->mu);
    d->eof = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    conn_put(d->c);
    return NULL;
}

static void *writer(void *arg) {
    struct dir *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->head && !d->eof) pthread_cond_wait(&d->cv, &d->mu);
        struct chunk *k = d->head;
        if (k) {
            d->head = k->next;
            if (!d->head) d->tail = NULL;
        }
        pthread_mutex_unlock(&d->mu);
        if (!k) break; /* eof and drained */
        sleep_until(k->release);
        size_t off = 0;
        while (off < k->n && !atomic_load(&d->c->broken)) {
            ssize_t w = write(d->to, k->data + off, k->n - off);
            if (w < 0) {
                if (errno == EINTR) continue;
                conn_break(d->c);
                break;
            }
            off += (size_t)w;
        }
        free(k);
    }
    /* the FIN travels like the data: RTT/2 after the last bytes arrived, already waited */
    if (!atomic_load(&d->c->broken)) shutdown(d->to, SHUT_WR);
    conn_put(d->c);
    return NULL;
}

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void spawn(void *(*fn)(void *), void *arg) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&t, &at, fn, arg) != 0) { perror("pthread_create"); exit(1); }
    pthread_attr_destroy(&at);
}

int main(int argc, char **argv) {
    int listen_port = 0, to_port = 0;
    const char *to_host = "127.0.0.1", *ready = NULL;
    double rtt_ms = 30, rate_bps = 0;
    long long window = 4LL << 20;
    static char hostbuf[256];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "wanproxy: %s needs a value\n", o); return 2; }
        if (!strcmp(o, "--listen")) listen_port = atoi(v);
        else if (!strcmp(o, "--to")) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon - v >= (long)sizeof hostbuf) { fprintf(stderr, "wanproxy: --to HOST:PORT\n"); return 2; }
            memcpy(hostbuf, v, (size_t)(colon - v));
            hostbuf[colon - v] = 0;
            to_host = hostbuf;
            to_port = atoi(colon + 1);
        } else if (!strcmp(o, "--rtt")) rtt_ms = atof(v);
        else if (!strcmp(o, "--window")) window = atoll(v);
        else if (!strcmp(o, "--rate")) rate_bps = atof(v);
        else if (!strcmp(o, "--ready")) ready = v;
        else { fprintf(stderr, "wanproxy: unknown option %s\n", o); return 2; }
        i++;
    }
    if (!listen_port || !to_port) { fprintf(stderr, "wanproxy: --listen PORT --to HOST:PORT needed\n"); return 2; }
    g_delay = rtt_ms / 2000.0;
    g_window = window;
    g_rate = rate_bps / 8.0;
    signal(SIGPIPE, SIG_IGN);
    mallopt(M_MMAP_THRESHOLD, 64 << 20); /* chunks from the heap, not one mmap each */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);

    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((unsigned short)listen_port)};
    inet_pton(AF_INET, "127.0.0.1", &la.sin_addr);
    if (bind(ls, (struct sockaddr *)&la, sizeof la) < 0 || listen(ls, 1024) < 0) { perror("wanproxy: listen"); return 1; }
    struct sockaddr_in ta = {.sin_family = AF_INET, .sin_port = htons((unsigned short)to_port)};
    if (inet_pton(AF_INET, to_host, &ta.sin_addr) != 1) { fprintf(stderr, "wanproxy: --to needs an IPv4 address\n"); return 2; }
    if (ready) {
        FILE *f = fopen(ready, "w");
        if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); }
    }
    for (;;) {
        int a = accept(ls, NULL, NULL);
        if (a < 0) { if (errno == EINTR) continue; perror("wanproxy: accept"); continue; }
        int b = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(b, (struct sockaddr *)&ta, sizeof ta) < 0) { close(a); close(b); continue; }
        nodelay(a);
        nodelay(b);
        struct conn *c = calloc(1, sizeof *c);
        c->a = a;
        c->b = b;
        atomic_init(&c->refs, 4);
        atomic_init(&c->broken, 0);
        for (int i = 0; i < 2; i++) {
            struct dir *d = &c->d[i];
            d->from = i == 0 ? a : b;
            d->to = i == 0 ? b : a;
            d->c = c;
            pthread_mutex_init(&d->mu, NULL);
            pthread_cond_init(&d->cv, NULL);
        }
        for (int i = 0; i < 2; i++) {
            spawn(reader, &c->d[i]);
            spawn(writer, &c->d[i]);
        }
    }
}
