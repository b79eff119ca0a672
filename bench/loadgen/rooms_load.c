/* rooms-load: the load generator of bench/rooms.py, in C.
 *
 * It does what rooms.py's picows generator does, for a fraction of its CPU per message:
 * one process, one epoll loop, non-blocking sockets. It opens rooms x clients WebSockets
 * to ws://127.0.0.1:PORT/ws (client i from source address 127.0.0.(2 + i mod 253), on
 * worker PORTS[i's room mod W] or, with --placement spread, PORTS[i mod W]), at most 200
 * handshakes at a time; once every client is connected, each one joins its room with
 * {"type":"resume","id":1,"data":{"rooms":{"rN":null}}} and waits for its response.
 * Then one client per room sends {"type":"say","data":{"r":..,"t":SENDER_CLOCK,"p":..}}
 * RATE times a second, spread over 10 ms ticks, and every client that receives a "said"
 * frame reads "t" and records now - t (CLOCK_MONOTONIC, the clock of Python's
 * time.monotonic()).
 *
 * The controller (rooms.py's load process, which keeps the stepping, the CPU accounting
 * and the reporting) talks to it over pipes, one line each way:
 *   stdout: "joined"            once every client has its response;
 *   stdin:  "rate R"            publications per room per second from now on;
 *           "start"             start a measured window (counts and latencies reset);
 *           "stop"              end it; answered by one JSON line: seconds, cpu_s (its
 *                               own CPU), delivered, sent, bad (over the whole run),
 *                               lost (connections), p50_ms, p99_ms, max_ms;
 *           "quit" or EOF       close every connection (close frames, up to 2 s) and exit.
 * Bounded: --max-seconds for the whole run, 120 s to connect and 120 s to join, at most
 * MAX_CONNS clients, at most MAX_PENDING unsent bytes per connection. Errors go to stderr
 * with exit status 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* bind an address now, the port at connect() */
#endif

#define MAX_CONNS 60000
#define MAX_PORTS 64
#define AT_ONCE 200                    /* handshakes under way at a time, as rooms.py */
#define SOURCES 253                    /* source addresses 127.0.0.2 ... 127.0.0.254 */
#define MAX_FRAME (1 << 20)            /* a bigger frame from the server is an error */
#define MAX_PENDING (4 << 20)          /* unsent bytes a connection may queue */
#define MAX_LATENCIES (16 << 20)       /* latencies kept per window (128 MiB) */
#define PHASE_LIMIT 120.0              /* seconds to connect, then to join */
#define TICK_NS 10000000L              /* the publisher's tick: 10 ms */
#define ID_STDIN UINT32_MAX            /* epoll ids that are not connections */
#define ID_TIMER (UINT32_MAX - 1)

/* RFC 6455's own example key and the accept value it gives: checking the server's
 * answer then needs no SHA-1 here. The key is meant to be a fresh nonce; a benchmark
 * against its own server does not need that protection (it guards against proxies). */
static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static const char PAD[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; /* 40, as rooms.py */
static const char SAID[] = "{\"type\":\"said\"";
static const char RESPONSE[] = "{\"type\":\"response\"";

enum state { CONNECTING, UPGRADING, OPEN, CLOSING, DONE };

struct conn {
    int fd;
    enum state state;
    uint16_t port;          /* the worker's port */
    int room;
    char *in;               /* bytes received but not parsed yet (a partial frame) */
    size_t in_len, in_cap;
    char *out;              /* bytes the socket did not take yet */
    size_t out_len, out_cap;
};

static struct conn *conns;
static int n_conns, rooms, per_room, epfd;
static double rate;                 /* publications per room per second */
static int recording;               /* within a measured window */
static long connected, joined, delivered, sent, bad, lost, open_conns;
static double *latencies;           /* seconds, this window */
static size_t n_latencies, cap_latencies;
static uint64_t prng;               /* masking keys (xorshift64) */
static char rbuf[1 << 16];          /* every recv lands here first */

static void die(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("rooms-load: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Edge-triggered: a socket is reported once per arrival, not again at every epoll_wait
 * until read (level-triggered epoll polls each ready socket once more), so every read
 * goes until a short read: a stream socket is then drained (epoll(7)). */
static void watch(struct conn *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events | EPOLLET, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        if (!(*buf = realloc(*buf, *cap))) die("out of memory");
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}

static void drop(struct conn *c) {
    if (c->state == DONE) return;
    close(c->fd); /* also removes it from the epoll set */
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_len = c->out_cap = 0;
    if (c->state == OPEN || c->state == CLOSING) open_conns--;
    c->state = DONE;
}

/* Write what is queued; watch for EPOLLOUT only while something is left. */
static void flush(struct conn *c) {
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n < 0) { /* reset by the server: counted, not fatal */
            lost++;
            drop(c);
            return;
        }
        done += (size_t)n;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    watch(c, EPOLL_CTL_MOD, EPOLLIN | (c->out_len ? EPOLLOUT : 0));
}

static void queue(struct conn *c, const char *data, size_t n) {
    size_t done = 0;
    if (c->out_len == 0) { /* the usual case: the socket takes it all at once */
        ssize_t sent_now = send(c->fd, data, n, MSG_NOSIGNAL);
        if (sent_now == (ssize_t)n) return;
        if (sent_now > 0) done = (size_t)sent_now;
    }
    if (c->out_len + n - done > MAX_PENDING) die("a connection has 4 MiB unsent");
    int was_empty = c->out_len == 0;
    append(&c->out, &c->out_len, &c->out_cap, data + done, n - done);
    if (was_empty) flush(c); /* a real error is found here, or EPOLLOUT is watched */
}

/* One client frame, masked with a fresh key as RFC 6455 (5.3) requires. */
static void send_frame(struct conn *c, int opcode, const char *payload, size_t n) {
    char frame[14 + 1024];
    size_t head = 2;
    if (n > 1024) die("frame too long");
    frame[0] = (char)(0x80 | opcode); /* FIN */
    if (n < 126) {
        frame[1] = (char)(0x80 | n);
    } else {
        frame[1] = (char)(0x80 | 126);
        frame[2] = (char)(n >> 8);
        frame[3] = (char)n;
        head = 4;
    }
    prng ^= prng << 13, prng ^= prng >> 7, prng ^= prng << 17;
    uint8_t *mask = (uint8_t *)frame + head;
    memcpy(mask, &prng, 4);
    for (size_t i = 0; i < n; i++) frame[head + 4 + i] = (char)(payload[i] ^ mask[i & 3]);
    queue(c, frame, head + 4 + n);
}

static void start_connect(int i) {
    struct conn *c = &conns[i];
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as asyncio does */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    from.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(2 + i % SOURCES));
    if (bind(c->fd, (struct sockaddr *)&from, sizeof from) < 0) die("bind: %s", strerror(errno));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(c->port);
    if (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS)
        die("connect to port %d: %s", c->port, strerror(errno));
    c->state = CONNECTING;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void on_connected(struct conn *c) {
    int error = 0;
    socklen_t size = sizeof error;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error) die("connect to port %d: %s", c->port, strerror(error));
    char request[256];
    int n = snprintf(request, sizeof request,
                     "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     c->port, KEY);
    c->state = UPGRADING;
    watch(c, EPOLL_CTL_MOD, EPOLLIN);
    queue(c, request, (size_t)n);
}

/* The handshake's answer: 101 with the right accept value. Returns the bytes used, or 0
 * while the headers are incomplete. */
static size_t on_upgrade(struct conn *c, const char *data, size_t n) {
    const char *end = memmem(data, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > 8192) die("handshake answer over 8 KiB");
        return 0;
    }
    size_t size = (size_t)(end - data) + 4;
    char headers[8193]; /* lowercased, to find the header whatever its case */
    for (size_t i = 0; i < size && i < 8192; i++) headers[i] = (char)tolower(data[i]);
    headers[size < 8192 ? size : 8192] = '\0';
    const char *accept = strstr(headers, "\r\nsec-websocket-accept:");
    if (accept) { /* the value, compared as sent */
        accept = data + (accept - headers) + 23;
        while (*accept == ' ') accept++;
    }
    if (strncmp(headers, "http/1.1 101", 12) != 0 || !accept ||
        strncmp(accept, ACCEPT, sizeof ACCEPT - 1) != 0)
        die("bad handshake answer: %.*s", (int)(strchr(headers, '\r') - headers), data);
    c->state = OPEN;
    connected++;
    open_conns++;
    return size;
}

static void on_text(const char *p, size_t n) {
    if (n >= sizeof SAID - 1 && memcmp(p, SAID, sizeof SAID - 1) == 0) {
        if (!recording) return;
        const char *t = memmem(p, n, "\"t\":", 4);
        char number[48];
        size_t len = 0;
        if (t) /* copied out: strtod needs a terminated string */
            for (t += 4; t + len < p + n && len < sizeof number - 1 && t[len] != ','; len++)
                number[len] = t[len];
        number[len] = '\0';
        char *stop;
        double at = strtod(number, &stop);
        if (!t || stop == number) {
            bad++;
            return;
        }
        delivered++;
        if (n_latencies == cap_latencies && cap_latencies < MAX_LATENCIES) {
            cap_latencies = cap_latencies ? cap_latencies * 2 : 1 << 16;
            if (!(latencies = realloc(latencies, cap_latencies * sizeof *latencies)))
                die("out of memory");
        }
        if (n_latencies < cap_latencies) latencies[n_latencies++] = now() - at;
    } else if (n >= sizeof RESPONSE - 1 && memcmp(p, RESPONSE, sizeof RESPONSE - 1) == 0) {
        joined++;
    } else {
        bad++;
    }
}

/* Frames from the server (never masked). Returns the bytes used: whole frames only. */
static size_t on_frames(struct conn *c, const char *data, size_t n) {
    size_t at = 0;
    while (c->state == OPEN || c->state == CLOSING) {
        const uint8_t *h = (const uint8_t *)data + at;
        size_t left = n - at, head = 2;
        if (left < 2) break;
        uint64_t size = h[1] & 0x7f;
        if (h[1] & 0x80) die("masked frame from the server");
        if (size == 126) {
            head = 4;
            if (left < head) break;
            size = (uint64_t)h[2] << 8 | h[3];
        } else if (size == 127) {
            head = 10;
            if (left < head) break;
            size = 0;
            for (int i = 2; i < 10; i++) size = size << 8 | h[i];
        }
        if (size > MAX_FRAME) die("frame of %llu bytes from the server", (unsigned long long)size);
        if (left < head + size) break;
        const char *payload = data + at + head;
        int opcode = h[0] & 0x0f, fin = h[0] & 0x80;
        at += head + size;
        if (opcode == 0x1 && fin) {
            on_text(payload, size);
        } else if (opcode == 0x9) { /* ping: the same payload back */
            send_frame(c, 0xA, payload, size);
        } else if (opcode == 0x8) { /* close: answered with its code, then the socket */
            if (c->state == OPEN) {
                lost++;
                send_frame(c, 0x8, payload, size >= 2 ? 2 : 0);
            }
            drop(c);
        } else if (opcode != 0xA) { /* binary or fragmented: not what this app sends */
            bad++;
        }
    }
    return at;
}

/* New bytes for c: with what was left over, parse what is whole, keep the rest. */
static void consume(struct conn *c, size_t n) {
    const char *data = rbuf;
    size_t len = n;
    if (c->in_len) { /* a partial frame waits: parse it with the new bytes */
        append(&c->in, &c->in_len, &c->in_cap, rbuf, n);
        data = c->in, len = c->in_len;
    }
    size_t used = 0;
    if (c->state == UPGRADING) used = on_upgrade(c, data, len);
    if (c->state != UPGRADING) used += on_frames(c, data + used, len - used);
    if (c->state == DONE) return;
    if (data == c->in) { /* keep the rest of the buffer */
        memmove(c->in, c->in + used, len - used);
        c->in_len = len - used;
    } else if (used < len) {
        append(&c->in, &c->in_len, &c->in_cap, data + used, len - used);
    }
}

static void on_readable(struct conn *c) {
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { /* EOF or reset: expected only once we have sent our close */
            if (c->state != CLOSING) lost++;
            drop(c);
            return;
        }
        consume(c, (size_t)n);
        if (c->state == DONE || (size_t)n < sizeof rbuf) return;
    }
}

/* One event loop pass, at most timeout_ms long (plus a nap while publishing). */
static void ignore_ticks(uint64_t ticks) { (void)ticks; }
static void (*on_stdin)(void);
static void (*on_tick)(uint64_t);
static int timer_fd = -1;

/* Waking a sleeping process is what costs most here: on this VM each wakeup costs tens of
 * µs (the idle vCPU halts, an interrupt brings it back), and at 10,000 to 40,000
 * deliveries a second the frames would wake the generator for a few frames each time.
 * So while publishing it naps batch_ns between passes (unless the last pass was full):
 * frames pile up in the sockets and one wakeup serves dozens, which halves its CPU per
 * delivery; a frame is then read (and timed) at most batch_ns late. */
static long batch_ns = 1000000;
static int last_events;

static void poll_once(int timeout_ms) {
    struct epoll_event events[256];
    if (batch_ns && on_tick != ignore_ticks && last_events < 256) {
        struct timespec nap = {0, batch_ns};
        nanosleep(&nap, NULL);
    }
    int n = last_events = epoll_wait(epfd, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        uint32_t id = events[i].data.u32;
        if (id == ID_STDIN) {
            on_stdin();
        } else if (id == ID_TIMER) {
            uint64_t ticks = 0;
            if (read(timer_fd, &ticks, sizeof ticks) == sizeof ticks) on_tick(ticks);
        } else {
            struct conn *c = &conns[id];
            if (c->state == DONE) continue;
            if (c->state == CONNECTING) {
                on_connected(c);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
            if (c->state != DONE && events[i].events & EPOLLOUT) flush(c);
        }
    }
}

/* The controller's commands ------------------------------------------------------------ */

static int quitting;
static long window_sent;
static double window_start, window_cpu;

static double cpu_seconds(void) { /* this process's, user and system */
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank percentile, as rooms.py's percentile(): ms, or -1 without values. */
static double percentile(int q) {
    if (!n_latencies) return -1;
    size_t rank = (q * n_latencies + 99) / 100;
    rank = rank < 1 ? 1 : rank > n_latencies ? n_latencies : rank;
    return latencies[rank - 1] * 1000;
}

static void print_ms(const char *name, double ms) {
    if (ms < 0) printf(",\"%s\":null", name);
    else printf(",\"%s\":%.2f", name, ms);
}

static void command(const char *line) {
    if (strncmp(line, "rate ", 5) == 0) {
        rate = strtod(line + 5, NULL);
    } else if (strcmp(line, "start") == 0) {
        recording = 1;
        delivered = 0; /* bad frames are counted over the whole run, as rooms.py does */
        n_latencies = 0;
        window_sent = sent;
        window_start = now();
        window_cpu = cpu_seconds();
    } else if (strcmp(line, "stop") == 0) {
        recording = 0;
        double seconds = now() - window_start;
        qsort(latencies, n_latencies, sizeof *latencies, by_value);
        printf("{\"seconds\":%.6f,\"cpu_s\":%.6f,\"delivered\":%ld,\"sent\":%ld,"
               "\"bad\":%ld,\"lost\":%ld",
               seconds, cpu_seconds() - window_cpu, delivered, sent - window_sent, bad, lost);
        print_ms("p50_ms", percentile(50));
        print_ms("p99_ms", percentile(99));
        print_ms("max_ms", percentile(100));
        printf("}\n");
        fflush(stdout);
    } else if (strcmp(line, "quit") == 0) {
        quitting = 1;
    } else {
        die("unknown command: %s", line);
    }
}

static void read_stdin(void) {
    static char line[256];
    static size_t len;
    ssize_t n = read(0, line + len, sizeof line - 1 - len);
    if (n <= 0) { /* the controller is gone */
        quitting = 1;
        epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
        return;
    }
    len += (size_t)n;
    char *end;
    while ((end = memchr(line, '\n', len))) {
        *end = '\0';
        command(line);
        len -= (size_t)(end + 1 - line);
        memmove(line, end + 1, len);
    }
    if (len == sizeof line - 1) die("command too long");
}

/* The publisher: every tick, rate x rooms / 100 says, each from the next room's sender
 * (as rooms.py, a late tick is made up by the next ones). */
static int *senders, next_room;
static double owed;

static void publish(uint64_t ticks) {
    char say[256];
    for (uint64_t t = 0; t < ticks; t++) {
        owed += rate * rooms / 100;
        for (; owed >= 1; owed -= 1) {
            struct conn *c = &conns[senders[next_room]];
            int n = snprintf(say, sizeof say,
                             "{\"type\":\"say\",\"data\":{\"r\":\"r%d\",\"t\":%.9f,\"p\":\"%s\"}}",
                             next_room, now(), PAD);
            if (c->state == OPEN) send_frame(c, 0x1, say, (size_t)n);
            sent++;
            next_room = (next_room + 1) % rooms;
        }
    }
}

int main(int argc, char **argv) {
    int ports[MAX_PORTS], n_ports = 0, spread = 0;
    double max_seconds = 600;
    rooms = 1000, per_room = 10, rate = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--ports") == 0) {
            while (i + 1 < argc && argv[i + 1][0] != '-' && n_ports < MAX_PORTS)
                ports[n_ports++] = atoi(argv[++i]);
        } else if (!value) {
            die("%s needs a value", arg);
        } else if (strcmp(arg, "--rooms") == 0) {
            rooms = atoi(argv[++i]);
        } else if (strcmp(arg, "--clients") == 0) {
            per_room = atoi(argv[++i]);
        } else if (strcmp(arg, "--rate") == 0) {
            rate = strtod(argv[++i], NULL);
        } else if (strcmp(arg, "--placement") == 0) {
            spread = strcmp(argv[++i], "spread") == 0;
        } else if (strcmp(arg, "--batch-us") == 0) {
            batch_ns = atol(argv[++i]) * 1000;
            if (batch_ns < 0 || batch_ns > 100000000) die("--batch-us: 0 to 100000");
        } else if (strcmp(arg, "--max-seconds") == 0) {
            max_seconds = strtod(argv[++i], NULL);
        } else {
            die("unknown option %s", arg);
        }
    }
    n_conns = rooms * per_room;
    if (!n_ports || rooms < 1 || per_room < 1 || n_conns > MAX_CONNS)
        die("usage: rooms-load --ports P... [--rooms R] [--clients C] [--rate F] "
            "[--placement room|spread] [--batch-us N] [--max-seconds S]  (R x C <= %d)", MAX_CONNS);

    /* One descriptor per client, and a few more. */
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < (rlim_t)n_conns + 16) die("open-files limit under %d", n_conns + 16);

    double started = now(), deadline = started + max_seconds;
    prng = ((uint64_t)(started * 1e9) ^ (uint64_t)getpid() << 32) | 1; /* never 0 */
    conns = calloc((size_t)n_conns, sizeof *conns);
    senders = calloc((size_t)rooms, sizeof *senders);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !senders || epfd < 0) die("set-up failed");
    for (int i = 0; i < n_conns; i++) { /* client i is member i mod C of room i / C */
        int room = i / per_room, w = spread ? i % n_ports : room % n_ports;
        conns[i].port = (uint16_t)ports[w];
        conns[i].room = room;
        conns[i].fd = -1;
    }
    for (int room = 0; room < rooms; room++) /* members in turn: senders on every worker */
        senders[room] = room * per_room + room % per_room;
    on_stdin = read_stdin;
    on_tick = ignore_ticks;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = ID_STDIN};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) < 0) die("stdin: %s", strerror(errno));

    /* Connect, AT_ONCE handshakes at a time. */
    int next = 0;
    double limit_at = now() + PHASE_LIMIT;
    while (connected < n_conns && !quitting) {
        while (next < n_conns && next - connected < AT_ONCE) start_connect(next++);
        poll_once(100);
        if (now() > limit_at) die("only %ld of %d clients connected", connected, n_conns);
    }
    /* Join: every client sends its resume, then all the responses are awaited. */
    char resume[128];
    for (int i = 0; i < n_conns && !quitting; i++) {
        int n = snprintf(resume, sizeof resume,
                         "{\"type\":\"resume\",\"id\":1,\"data\":{\"rooms\":{\"r%d\":null}}}",
                         conns[i].room);
        send_frame(&conns[i], 0x1, resume, (size_t)n);
    }
    limit_at = now() + PHASE_LIMIT;
    while (joined < n_conns && !quitting) {
        poll_once(100);
        if (now() > limit_at) die("only %ld of %d clients joined", joined, n_conns);
    }
    printf("joined\n");
    fflush(stdout);

    /* Publish every 10 ms until told to quit. */
    struct itimerspec every = {.it_interval = {0, TICK_NS}, .it_value = {0, TICK_NS}};
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = ID_TIMER};
    if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &every, NULL) < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, timer_fd, &ev) < 0)
        die("timer: %s", strerror(errno));
    on_tick = publish;
    while (!quitting) {
        poll_once(100);
        if (now() > deadline) die("still running after --max-seconds %g", max_seconds);
    }

    /* Clean exit: a close frame (1000) on every connection, then up to 2 s for the
     * servers to answer and close. */
    on_tick = ignore_ticks;
    for (int i = 0; i < n_conns; i++) {
        struct conn *c = &conns[i];
        if (c->state != OPEN) {
            drop(c);
            continue;
        }
        c->state = CLOSING;
        send_frame(c, 0x8, "\x03\xe8", 2);
    }
    limit_at = now() + 2;
    while (open_conns > 0 && now() < limit_at) poll_once(50);
    for (int i = 0; i < n_conns; i++) drop(&conns[i]);
    return 0;
}
