/* main.c: openova-flow-devserver: arguments, environment, start, and a
 * clean stop on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "flow.h"
#include "http.h"

/* How long the stop waits for open streams to send their last chunk. */
#define STOP_WAIT_MS 2000

#ifndef OPENOVA_VERSION
#define OPENOVA_VERSION "dev"
#endif

static const char usage[] =
    "Usage: openova-flow-devserver [--replay] [--strict] [--max-body=BYTES]\n"
    "       openova-flow-devserver --help | --version\n"
    "\n"
    "A development and test server for the OpenovaFlow flow server API: the\n"
    "reference flow server's behaviour on the wire, with its state in memory only\n"
    "(lost when it stops). Not for production.\n"
    "\n"
    "  POST   /v1/flows/{flowId}/events    ingest one message: 200 {\"seq\":N};\n"
    "                                      400 when refused, 413 past the body limit\n"
    "  GET    /v1/flows/{flowId}/snapshot  folded state and a newline; 404 while empty\n"
    "  GET    /v1/flows/{flowId}/stream    Server-Sent Events: a snapshot frame first,\n"
    "                                      always, then every accepted message\n"
    "  DELETE /v1/flows/{flowId}           purge (idempotent): 204; open streams end\n"
    "  GET    /healthz, /readyz            200 \"ok\"\n"
    "\n"
    "As the reference does: messages are decoded leniently (keys in any case,\n"
    "missing fields empty, unknown fields dropped, invalid UTF-8 replaced) and\n"
    "re-encoded; errors are text/plain; a wrong method or an unknown path under\n"
    "/v1/flows/ is 405; delete-nodes leaves relationships; a stream on a flow\n"
    "never ingested is 200 and starts with id 0 and {\"type\":\"snapshot\"}, so a\n"
    "browser can open the page before the first message. Unlike the reference, a\n"
    "subscriber that falls further behind than the ring is disconnected (it\n"
    "reconnects and gets a snapshot frame) rather than silently losing frames.\n"
    "\n"
    "Extensions (off by default; the reference has none of them):\n"
    "  --replay          a stream with Last-Event-ID resumes after it from the ring,\n"
    "                    without a snapshot frame, while the ring still holds it\n"
    "  --strict          refuse what the schema forbids: missing required fields,\n"
    "                    unknown relationship types and conditions, keys in another\n"
    "                    case, invalid UTF-8, flow ids the proxy would refuse\n"
    "  --max-body=BYTES  the body limit (default 1048576, as the reference)\n"
    "\n"
    "Environment (a bad value exits with status 2):\n"
    "  FLOW_SERVER_LISTEN_ADDR    HOST:PORT to listen on (port 0: any free port)\n"
    "                             default " DS_DEFAULT_LISTEN "\n"
    "  FLOW_SERVER_RING_CAPACITY  frames kept per flow for slow subscribers and\n"
    "                             --replay, 1-1048576, default 4096\n"
    "  FLOW_SERVER_HEARTBEAT      heartbeat interval, a Go duration (15s, 500ms),\n"
    "                             default 15s\n"
    "  FLOW_SERVER_TLS_CERT       PEM certificate (chain): serve HTTPS (with the key)\n"
    "  FLOW_SERVER_TLS_KEY        its PEM key\n"
    "  FLOW_SERVER_TLS_CLIENT_CA  PEM CA: a client without a certificate it signed\n"
    "                             gets 403 (mutual TLS)\n"
    "\n"
    "Logs one line per request to stderr. SIGTERM or SIGINT stops it (exit 0).\n";

static const char *env(const char *name)
{
    return getenv(name);
}

int main(int argc, char **argv)
{
    char err[256];
    struct ds_config cfg;
    switch (ds_args_parse(argc, argv, &cfg, err, sizeof err)) {
    case DS_ARGS_HELP:
        fputs(usage, stdout);
        return 0;
    case DS_ARGS_VERSION:
        printf("openova-flow-devserver %s\n", OPENOVA_VERSION);
        return 0;
    case DS_ARGS_ERROR:
        fprintf(stderr, "openova-flow-devserver: %s\n", err);
        return 2;
    case DS_ARGS_RUN:
        break;
    }
    if (ds_config_load(&cfg, env, err, sizeof err) != 0) {
        fprintf(stderr, "openova-flow-devserver: %s\n", err);
        return 2;
    }

    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigwait below receives them; no handler
     * runs in a random thread. SIGPIPE: a client gone is an error return. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
        fprintf(stderr, "openova-flow-devserver: cannot block signals\n");
        return 1;
    }

    int status = 1;
    struct ds_http *http = NULL;
    struct ds_store *store = ds_store_new(cfg.ring_capacity);
    if (!store) {
        fprintf(stderr, "openova-flow-devserver: out of memory\n");
        goto out;
    }
    http = ds_http_start(&cfg, store, err, sizeof err);
    if (!http) {
        fprintf(stderr, "openova-flow-devserver: %s\n", err);
        goto out;
    }
    fprintf(stderr,
            "openova-flow-devserver %s: listening on %s (ring capacity %zu, heartbeat %llums, body limit %zu%s%s); "
            "development and test server, state in memory only\n",
            OPENOVA_VERSION, ds_http_url(http), cfg.ring_capacity, (unsigned long long)cfg.heartbeat_ms, cfg.max_body,
            cfg.replay ? ", --replay" : "", cfg.strict ? ", --strict" : "");

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    fprintf(stderr, "openova-flow-devserver: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* streams first: their threads may be waiting for messages. Each then
     * writes its last chunk and closes its subscriber; the daemon's stop
     * would cut those still writing, so it waits for them, briefly. */
    ds_store_shutdown(store);
    for (int waited_ms = 0; ds_store_subscribers(store) > 0 && waited_ms < STOP_WAIT_MS; waited_ms += 10)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
    status = 0;
out:
    ds_http_stop(http);
    ds_store_free(store);
    return status;
}
