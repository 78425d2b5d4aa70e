/* main.c: openova-flow-devserver: arguments, environment, start, and a
 * clean stop on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "flow.h"
#include "http.h"

#ifndef OPENOVA_VERSION
#define OPENOVA_VERSION "dev"
#endif

static const char usage[] =
    "Usage: openova-flow-devserver [--help | --version]\n"
    "\n"
    "A development and test server for the OpenovaFlow flow server API: its\n"
    "state lives in memory only and is lost when it stops. Not for production.\n"
    "\n"
    "  POST   /v1/flows/{flowId}/events    ingest one message: 200 {\"seq\":N}, 400, 413\n"
    "  GET    /v1/flows/{flowId}/snapshot  folded state; 404 before the first message\n"
    "  GET    /v1/flows/{flowId}/stream    Server-Sent Events: a snapshot frame, then\n"
    "                                      every accepted message; Last-Event-ID resumes\n"
    "                                      from the ring when it still holds what follows\n"
    "  DELETE /v1/flows/{flowId}           purge (idempotent): 204; open streams end\n"
    "  GET    /healthz, /readyz            200 {\"status\":\"ok\"}\n"
    "\n"
    "A stream on a flow that was never ingested is still 200: it starts with the\n"
    "snapshot frame of an empty flow (id 0, \"flow\":null, empty arrays) and then\n"
    "follows live, so a browser can open the page before the first message.\n"
    "A subscriber that falls further behind than the ring holds is disconnected;\n"
    "it reconnects with Last-Event-ID and gets a snapshot frame.\n"
    "\n"
    "Environment (a bad value exits with status 2):\n"
    "  FLOW_SERVER_LISTEN_ADDR    HOST:PORT to listen on (port 0: any free port)\n"
    "                             default " DS_DEFAULT_LISTEN "\n"
    "  FLOW_SERVER_RING_CAPACITY  messages kept per flow for resumption, 1-1048576,\n"
    "                             default 4096\n"
    "  FLOW_SERVER_HEARTBEAT      silence before a heartbeat frame, a Go duration\n"
    "                             (15s, 500ms), default 15s\n"
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
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("openova-flow-devserver %s\n", OPENOVA_VERSION);
            return 0;
        }
        fprintf(stderr, "openova-flow-devserver: unknown argument \"%s\" (try --help)\n", argv[i]);
        return 2;
    }

    char err[256];
    struct ds_config cfg;
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
            "openova-flow-devserver %s: listening on %s (ring capacity %zu, heartbeat %llums); "
            "development and test server, state in memory only\n",
            OPENOVA_VERSION, ds_http_url(http), cfg.ring_capacity, (unsigned long long)cfg.heartbeat_ms);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    fprintf(stderr, "openova-flow-devserver: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* streams first: their threads may be waiting for messages */
    ds_store_shutdown(store);
    status = 0;
out:
    ds_http_stop(http);
    ds_store_free(store);
    return status;
}
