// Sockets born at known call sites, for the traced tests: a server that
// accepts at accept_client(), a client that connects at open_backend().
//
//   births READY server PORT keep|hangup   accept forever in a second thread, named
//                                          "acceptor"; keep every socket, or close it at once
//                                          (a multi-threaded process: glibc's accept() then
//                                          takes its path with a stack frame)
//   births READY client PORT N keep|close  N connections to 127.0.0.1:PORT; keep them, or close
//                                          each (one thread: glibc's frameless connect())
//
// Each writes {"pid": PID} to READY (by rename) when its sockets are in
// place (the server: once it listens), then keeps running. Built with frame
// pointers (-fno-omit-frame-pointer), as a frame-pointer walk needs them.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void ready(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { perror("ready"); exit(1); }
    fprintf(f, "{\"pid\": %d}", getpid());
    fclose(f);
    if (rename(tmp, path)) { perror("ready"); exit(1); }
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

__attribute__((noinline)) static int accept_client(int listener) {
    return accept(listener, NULL, NULL);
}

struct server {
    int listener, keep;
};

__attribute__((noinline)) static void *serve_forever(void *arg) {
    struct server *s = arg;
    for (;;) {
        int c = accept_client(s->listener);
        if (c >= 0 && !s->keep) close(c);
    }
    return NULL;
}

__attribute__((noinline)) static int open_backend(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); exit(1); }
    return fd;
}

__attribute__((noinline)) static void fetch_quotes(int port, int n, int keep) {
    for (int i = 0; i < n; i++) {
        int fd = open_backend(port);
        if (!keep) close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[2], "server")) {
        int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = loopback(atoi(argv[3]));
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 512)) { perror("listen"); return 1; }
        struct server s = {ls, !strcmp(argv[4], "keep")};
        pthread_t t;
        if (pthread_create(&t, NULL, serve_forever, &s)) { perror("pthread_create"); return 1; }
        pthread_setname_np(t, "acceptor");
        ready(argv[1]);
        pthread_join(t, NULL);
    } else if (argc == 6 && !strcmp(argv[2], "client")) {
        fetch_quotes(atoi(argv[3]), atoi(argv[4]), !strcmp(argv[5], "keep"));
        ready(argv[1]);
        for (;;) pause();
    }
    fprintf(stderr, "usage: births READY server PORT keep|hangup | client PORT N keep|close\n");
    return 2;
}
