/*
 * The boot storm's load generator in C (bench/storm.ts compiles it with gcc and runs a few
 * of them): the same clients as dataplane/test/helpers/storm-client.ts, at a fraction of the
 * CPU per packet (epoll, recvmmsg, memcmp against mmapped payloads), so that on a 2-core
 * machine the server, not the clients, is what the storm measures.
 *
 *   storm-load SPEC     prints "ready", waits for a line on stdin, runs, prints one JSON line
 *
 * SPEC is a text file:
 *   S <host> <port> <edk2|ipxe> <retransmit-ms> <max-retries> [sequential|parallel]
 *   P <path>                        (payload 0, 1, ...: the expected bytes)
 *   C <address> <name> <payload> [<name> <payload> ...]   (one client, its fetches)
 *
 * Profiles: edk2 = RRQ blksize 1468 windowsize 4 tsize 0; ipxe = RRQ blksize 1432 tsize 0
 * answered with ERROR 8 after the OACK (the size probe), then the same RRQ lock-step from a
 * fresh port. sequential: each client fetches its files one after the other, as firmware
 * does, the next once the last is complete (a failure ends the client); parallel (the
 * default): all at once. Output: the StormRunResult of storm-client.ts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { OP_RRQ = 1, OP_DATA = 3, OP_ACK = 4, OP_ERROR = 5, OP_OACK = 6 };
#define BATCH 32
#define BUFSZ 4096
#define MAX_PAYLOADS 64

struct payload { const uint8_t *bytes; size_t size; };

struct client {
  char address[64];
  int left, ok;
  double ms;
  char failure[160];
};

struct transfer {
  struct client *client;
  const char *name;
  const struct payload *payload;
  struct sockaddr_in local;
  int fd, probing, done;
  struct transfer *next; /* the client's next file (sequential), or NULL */
  uint16_t server_tid;
  uint32_t blksize, windowsize, received, in_window, retries;
  uint8_t last[600];
  size_t last_len;
  uint16_t last_port;
  double last_activity;
};

static struct sockaddr_in server;
static int ipxe, sequential, retransmit_ms, max_retries, epfd, open_clients;
static struct payload payloads[MAX_PAYLOADS];
static int npayloads;
static double t0;
static long long bytes_total, duplicate_data, resent;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void send_to(struct transfer *t, const uint8_t *buf, size_t len, uint16_t port) {
  if (buf != t->last) memcpy(t->last, buf, len);
  t->last_len = len;
  t->last_port = port;
  struct sockaddr_in to = server;
  to.sin_port = htons(port);
  sendto(t->fd, t->last, len, 0, (struct sockaddr *)&to, sizeof to);
}

static size_t build_rrq(uint8_t *out, const char *name) {
  const char *opts[] = {"octet", "blksize", ipxe ? "1432" : "1468", "tsize", "0",
                        ipxe ? NULL : "windowsize", ipxe ? NULL : "4"};
  size_t n = 0;
  out[n++] = 0;
  out[n++] = OP_RRQ;
  n += (size_t)sprintf((char *)out + n, "%s", name) + 1;
  for (size_t i = 0; i < sizeof opts / sizeof *opts && opts[i]; i++)
    n += (size_t)sprintf((char *)out + n, "%s", opts[i]) + 1;
  return n;
}

static void open_socket(struct transfer *t) {
  t->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (t->fd < 0) die("socket");
  if (bind(t->fd, (struct sockaddr *)&t->local, sizeof t->local) < 0) die("bind");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = t};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, t->fd, &ev) < 0) die("epoll_ctl");
}

static void start(struct transfer *t) {
  open_socket(t);
  t->server_tid = 0;
  t->blksize = 512;
  t->windowsize = 1;
  t->received = t->in_window = t->retries = 0;
  t->last_activity = now_ms();
  uint8_t rrq[600];
  size_t n = build_rrq(rrq, t->name);
  send_to(t, rrq, n, ntohs(server.sin_port));
}

static void close_socket(struct transfer *t) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, t->fd, NULL);
  close(t->fd);
  t->fd = -1;
}

static void end(struct transfer *t, const char *failure) {
  if (t->done) return;
  t->done = 1;
  close_socket(t);
  struct client *c = t->client;
  if (failure && c->ok) {
    c->ok = 0;
    snprintf(c->failure, sizeof c->failure, "%s: %s", t->name, failure);
  }
  c->left--;
  if (sequential && t->next) {
    if (!failure) {
      t->next->probing = ipxe;
      start(t->next);
      return;
    }
    /* A failed fetch ends the client: its later files never start. */
    for (struct transfer *n = t->next; n; n = n->next) {
      n->done = 1;
      c->left--;
    }
  }
  if (c->left == 0) {
    c->ms = now_ms() - t0;
    open_clients--;
  }
}

static void send_ack(struct transfer *t, uint32_t block) {
  uint8_t a[4] = {0, OP_ACK, (uint8_t)(block >> 8), (uint8_t)block};
  send_to(t, a, 4, t->server_tid);
}

static void on_oack(struct transfer *t, const uint8_t *m, size_t len) {
  if (t->received > 0) return;
  const char *p = (const char *)m + 2, *end_ = (const char *)m + len;
  while (p < end_) {
    const char *key = p;
    p += strnlen(p, (size_t)(end_ - p)) + 1;
    if (p >= end_) break;
    const char *val = p;
    p += strnlen(p, (size_t)(end_ - p)) + 1;
    if (!strcmp(key, "blksize")) t->blksize = (uint32_t)atoi(val);
    if (!strcmp(key, "windowsize")) t->windowsize = (uint32_t)atoi(val);
  }
  t->retries = 0;
  t->last_activity = now_ms();
  if (t->probing) {
    static const uint8_t abort_probe[] = "\0\5\0\10size probe done";
    struct sockaddr_in to = server;
    to.sin_port = htons(t->server_tid);
    sendto(t->fd, abort_probe, sizeof abort_probe, 0, (struct sockaddr *)&to, sizeof to);
    close_socket(t);
    t->probing = 0;
    start(t);
    return;
  }
  send_ack(t, 0);
}

static void on_data(struct transfer *t, const uint8_t *m, size_t len) {
  uint16_t block = (uint16_t)(m[2] << 8 | m[3]);
  if (block != (uint16_t)(t->received + 1)) {
    duplicate_data++;
    if (t->windowsize > 1 && block != (uint16_t)t->received) {
      t->in_window = 0;
      send_ack(t, t->received);
    }
    return;
  }
  size_t n = len - 4;
  size_t offset = (size_t)t->received * t->blksize;
  if (offset + n > t->payload->size || memcmp(t->payload->bytes + offset, m + 4, n) != 0) {
    char why[64];
    snprintf(why, sizeof why, "bytes differ in block %u", t->received + 1);
    end(t, why);
    return;
  }
  t->received++;
  bytes_total += (long long)n;
  t->retries = 0;
  t->last_activity = now_ms();
  int last = n < t->blksize;
  if (last || ++t->in_window >= t->windowsize) {
    t->in_window = 0;
    send_ack(t, block);
  }
  if (last) end(t, offset + n == t->payload->size ? NULL : "short file");
}

static void on_packet(struct transfer *t, const uint8_t *m, size_t len, uint16_t port) {
  if (t->done || len < 4 || m[0] != 0) return;
  if (!t->server_tid) t->server_tid = port;
  else if (port != t->server_tid) return;
  if (m[1] == OP_DATA) on_data(t, m, len);
  else if (m[1] == OP_OACK) on_oack(t, m, len);
  else if (m[1] == OP_ERROR) {
    char why[140];
    snprintf(why, sizeof why, "ERROR %d %.*s", m[2] << 8 | m[3], (int)(len > 5 ? len - 5 : 0),
             (const char *)m + 4);
    end(t, why);
  }
}

static void drain(struct transfer *t) {
  static uint8_t bufs[BATCH][BUFSZ];
  static struct mmsghdr msgs[BATCH];
  static struct iovec iov[BATCH];
  static struct sockaddr_in from[BATCH];
  while (!t->done && t->fd >= 0) {
    for (int i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec){bufs[i], BUFSZ};
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i],
                                        .msg_iov = &iov[i], .msg_iovlen = 1};
    }
    int fd = t->fd;
    int got = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (got <= 0) return;
    for (int i = 0; i < got && t->fd == fd; i++)
      on_packet(t, bufs[i], msgs[i].msg_len, ntohs(from[i].sin_port));
    if (got < BATCH) return;
  }
}

static void load_payload(const char *path) {
  if (npayloads == MAX_PAYLOADS) die("too many payloads");
  int fd = open(path, O_RDONLY);
  if (fd < 0) die(path);
  struct stat st;
  fstat(fd, &st);
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (m == MAP_FAILED) die("mmap");
  close(fd);
  payloads[npayloads++] = (struct payload){m, (size_t)st.st_size};
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: storm-load SPEC\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) die(argv[1]);
  size_t cap = 1024, nclients = 0, ntransfers = 0;
  struct client *clients = calloc(cap, sizeof *clients);
  struct transfer *transfers = calloc(cap * 4, sizeof *transfers);
  char line[8192];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (line[0] == 'S') {
      char host[64], profile[16], order[16] = "parallel";
      int port;
      if (sscanf(line, "S %63s %d %15s %d %d %15s", host, &port, profile, &retransmit_ms,
                 &max_retries, order) < 5)
        die("bad S line");
      sequential = !strcmp(order, "sequential");
      server.sin_family = AF_INET;
      server.sin_port = htons((uint16_t)port);
      inet_pton(AF_INET, host, &server.sin_addr);
      ipxe = !strcmp(profile, "ipxe");
    } else if (line[0] == 'P') {
      load_payload(line + 2);
    } else if (line[0] == 'C') {
      if (nclients == cap) {
        cap *= 2;
        clients = realloc(clients, cap * sizeof *clients);
        transfers = realloc(transfers, cap * 4 * sizeof *transfers);
      }
      struct client *c = &clients[nclients];
      memset(c, 0, sizeof *c);
      c->ok = 1;
      char *save, *tok = strtok_r(line + 2, " ", &save);
      snprintf(c->address, sizeof c->address, "%s", tok);
      while ((tok = strtok_r(NULL, " ", &save))) {
        char *idx = strtok_r(NULL, " ", &save);
        if (!idx || c->left == 4) die("bad C line");
        struct transfer *t = &transfers[ntransfers++];
        memset(t, 0, sizeof *t);
        t->fd = -1;
        t->name = strdup(tok);
        t->payload = &payloads[atoi(idx)];
        t->local.sin_family = AF_INET;
        inet_pton(AF_INET, c->address, &t->local.sin_addr);
        t->client = (struct client *)(uintptr_t)nclients; /* fixed up below */
        c->left++;
      }
      nclients++;
    }
  }
  fclose(f);
  for (size_t i = 0; i < ntransfers; i++) {
    transfers[i].client = &clients[(uintptr_t)transfers[i].client];
    if (i > 0 && transfers[i - 1].client == transfers[i].client)
      transfers[i - 1].next = &transfers[i];
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  printf("ready\n");
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 1;

  struct timeval tv;
  gettimeofday(&tv, NULL);
  double started_at = tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
  double cpu0 = cpu_seconds();
  t0 = now_ms();
  open_clients = (int)nclients;
  for (size_t i = 0; i < ntransfers; i++) {
    if (sequential && i > 0 && transfers[i - 1].client == transfers[i].client) continue;
    transfers[i].probing = ipxe;
    start(&transfers[i]);
  }
  struct epoll_event events[256];
  double last_scan = now_ms();
  while (open_clients > 0) {
    int n = epoll_wait(epfd, events, 256, 50);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) drain(events[i].data.ptr);
    double now = now_ms();
    if (now - last_scan < 50) continue;
    last_scan = now;
    for (size_t i = 0; i < ntransfers; i++) {
      struct transfer *t = &transfers[i];
      if (t->done || t->fd < 0 || now - t->last_activity < retransmit_ms) continue;
      if (++t->retries > (uint32_t)max_retries) {
        char why[64];
        snprintf(why, sizeof why, "timed out after %u blocks", t->received);
        end(t, why);
        continue;
      }
      t->last_activity = now;
      resent++;
      send_to(t, t->last, t->last_len, t->last_port);
    }
  }
  gettimeofday(&tv, NULL);
  printf("{\"clients\":[");
  for (size_t i = 0; i < nclients; i++) {
    struct client *c = &clients[i];
    printf("%s{\"address\":", i ? "," : "");
    json_string(c->address);
    printf(",\"ok\":%s,\"ms\":%.3f", c->ok ? "true" : "false", c->ms);
    if (!c->ok) {
      printf(",\"failure\":");
      json_string(c->failure);
    }
    putchar('}');
  }
  printf("],\"bytes\":%lld,\"duplicateData\":%lld,\"resent\":%lld,\"cpuSeconds\":%.3f,"
         "\"startedAt\":%.3f,\"endedAt\":%.3f}\n",
         bytes_total, duplicate_data, resent, cpu_seconds() - cpu0, started_at,
         tv.tv_sec * 1e3 + tv.tv_usec / 1e3);
  return 0;
}
