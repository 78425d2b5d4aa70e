/* request.h: one FastCGI request as the handlers see it. Everything is
 * copied out of the FastCGI parameters, so the struct stays valid after the
 * FCGX_Request is finished or handed to the stream loop. One per request,
 * owned by the worker that accepted it. */
#ifndef OPENOVA_REQUEST_H
#define OPENOVA_REQUEST_H

#include <stdbool.h>
#include <time.h>

#include "core/buf.h"

#include <fcgiapp.h>

#include "core/config.h"
#include "handlers/route.h"

#define FCGI_REQUEST_ID_MAX 128
#define FCGI_LAST_EVENT_ID_MAX 256

struct upstream_client;
struct stream_loop;
struct auth;

struct fcgi_request {
    FCGX_Request *fcgx;           /* borrowed; NULL once a stream took the connection */
    const struct proxy_config *cfg;
    struct upstream_client *upstream; /* the worker's own, reused */
    struct stream_loop *streams;
    struct auth *auth;       /* shared, thread-safe */

    char method[16];
    char *request_uri;
    char *content_type;           /* NULL when the client sent none */
    char *accept;
    char *last_event_id;          /* NULL when absent or not acceptable */
    char *user;                   /* the authenticated user, NULL for none */
    time_t credential_expires;    /* when the caller's credential ends (a stream ends then); 0: never */
    char *remote_addr;
    long long content_length;     /* -1 when absent */
    char request_id[FCGI_REQUEST_ID_MAX + 1];

    const struct route *route;
    char id[ROUTE_ID_MAX + 1];

    /* Response state: one function writes the head and remembers it did.
     * Head and body bytes wait in pending (the worker's buffer, reused) to
     * leave in as few writes as possible. */
    bool head_sent;
    struct buf *pending;
    bool out_started;             /* some of the response reached the web server */
    bool out_failed;              /* a write to the web server failed: it is gone */
    int status;
    const char *error_code;       /* static; set when the proxy answered with its own error */
    bool abort_response;          /* the body went wrong after the head: cut the connection, no clean end */
    unsigned long long bytes_out;
    struct timespec started;
};

/* fcgi_request_load: copies what the proxy needs from fcgx's parameters into
 * req (zeroed first). Returns 0, or -1 when out of memory (req then holds
 * what fcgi_request_free releases). */
int fcgi_request_load(struct fcgi_request *req, FCGX_Request *fcgx, const struct proxy_config *cfg);

/* fcgi_request_free: frees the copies req owns; NULL-safe. */
void fcgi_request_free(struct fcgi_request *req);

/* fcgi_request_id_acceptable: printable ASCII without spaces, 1..128 chars. */
bool fcgi_request_id_acceptable(const char *id);

/* fcgi_request_id_generate: 32 random lowercase hex characters into out
 * (at least 33 bytes). */
void fcgi_request_id_generate(char *out);

#define FCGI_HEADER_VALUE_MAX (16 * 1024) /* one request header's value */
#define FCGI_HEADERS_TOTAL_MAX (64 * 1024) /* all of them together */

/* fcgi_request_headers_acceptable: false when one HTTP_* parameter of envp
 * (NULL-terminated "NAME=value" strings) has a value longer than max_value,
 * or all of them together exceed max_total bytes. Pure. */
bool fcgi_request_headers_acceptable(char **envp, size_t max_value, size_t max_total);

/* fcgi_request_elapsed_ms: milliseconds since req->started. */
long fcgi_request_elapsed_ms(const struct fcgi_request *req);

#endif
