/* request.h: one FastCGI request as read from the web server. What the
 * proxy needs of the parameters is copied and checked once, here, so that
 * the layers above trust it; the response state travels with it (response.h).
 * A request belongs to the worker that accepted it until it is finished, or
 * until it is detached from libfcgi and moved to a new owner (a stream). */
#ifndef OPENOVA_FCGI_REQUEST_H
#define OPENOVA_FCGI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <fcgiapp.h>

#include "core/buf.h"
#include "core/error.h"
#include "fcgi/queue.h"
#include "fcgi/record.h"

#define FCGI_REQUEST_ID_MAX 128     /* a client's X-Request-ID longer than this is replaced */
#define FCGI_LAST_EVENT_ID_MAX 256  /* a longer Last-Event-ID is ignored */
#define FCGI_CONTENT_TYPE_MAX 1024  /* a longer Content-Type is refused (400) */
#define FCGI_ACCEPT_MAX 1024        /* a longer Accept is not forwarded */
#define FCGI_REMOTE_ADDR_MAX 64     /* an address longer than any IPv6 text is not forwarded */
#define FCGI_HEADER_VALUE_MAX (16 * 1024) /* one request header's value: past it 431 */
#define FCGI_HEADERS_TOTAL_MAX (64 * 1024) /* all of them together: past it 431 */

/* The response's state: the head is decided before the first byte, and the
 * request remembers whether it went out. */
struct fcgi_response {
    struct buf held;          /* head and body bytes held back to leave in as few writes as possible */
    struct buf unsent;        /* detached: framed records the socket did not take yet */
    struct fcgi_queue queue;  /* detached: what waits behind unsent, by reference (shared frames) */
    struct fcgi_record_scanner written; /* detached: where the bytes on the wire stand in their records */
    bool head_sent;           /* committed: the status cannot change any more */
    bool out_started;         /* some of the response reached the web server */
    bool out_failed;          /* a write to the web server failed: it is gone */
    bool cut;                 /* the body went wrong after the head: cut the connection, no clean end */
    bool ended;               /* detached: FCGI_END_REQUEST is queued behind the body */
    int status;
    const char *error_code;   /* static; set when the proxy answered with its own error */
    unsigned long long bytes_out; /* body bytes accepted for sending */
    unsigned long long bytes_written; /* detached: bytes the socket took, records and all */
};

struct fcgi_request {
    FCGX_Request *fcgx;       /* borrowed from the worker; NULL once finished or detached */
    bool detached;            /* moved out of libfcgi: the request owns detached_fd */
    int detached_fd;          /* the connection once detached, else -1 */
    bool keep_conn;           /* detached: the web server asked to keep the connection */
    bool peer_done;           /* detached: the web server closed or aborted */
    bool aborted;             /* FCGI_ABORT_REQUEST (or input libfcgi could not read) came */
    struct fcgi_lobby *lobby; /* where a kept connection waits for its next request (set by the server) */
    unsigned fcgi_id;         /* the FastCGI request id records carry */
    struct fcgi_record_scanner scan; /* detached: watches for FCGI_ABORT_REQUEST */

    char method[16];
    char *request_uri;
    char *content_type;       /* NULL when absent */
    char *accept;             /* NULL when absent or not forwardable */
    char *last_event_id;      /* NULL when absent or not acceptable (then last_event_id_ignored) */
    char *remote_addr;        /* NULL when absent or not forwardable */
    long long content_length; /* -1 when absent */
    bool content_length_invalid;  /* sent but not a number */
    bool content_type_invalid;    /* not printable, or longer than FCGI_CONTENT_TYPE_MAX */
    bool headers_too_large;       /* past FCGI_HEADER_VALUE_MAX or FCGI_HEADERS_TOTAL_MAX */
    bool last_event_id_ignored;
    char request_id[FCGI_REQUEST_ID_MAX + 1];
    struct timespec started;
    long long read_deadline_ms;   /* CLOCK_MONOTONIC ms by which the body must be read; 0: none */
    bool read_timed_out;          /* the body did not arrive by read_deadline_ms */

    struct fcgi_response out;
};

/* fcgi_request_load: copies and checks what the proxy needs from fcgx's
 * parameters into req (zeroed first). held lends req a response buffer
 * (its memory moves into req; fcgi_request_free gives it back). Returns
 * PROXY_OK, or PROXY_ERR_NOMEM (req then holds what fcgi_request_free
 * releases, and can still answer). */
enum proxy_err fcgi_request_load(struct fcgi_request *req, FCGX_Request *fcgx, struct buf *held);

/* fcgi_request_param: a FastCGI parameter as the web server sent it, or
 * NULL; borrowed, valid until the request is finished or detached. */
const char *fcgi_request_param(const struct fcgi_request *req, const char *name);

/* fcgi_request_read: up to len bytes of the request body into data, within
 * req->read_deadline_ms (when set). Returns the number read; 0 at the end of
 * the body or when reading failed, and then req->read_timed_out says whether
 * the deadline passed first. */
size_t fcgi_request_read(struct fcgi_request *req, char *data, size_t len);

/* fcgi_request_bound_reads: every read of fd waits at most ms (0: no bound),
 * so that a web server that neither sends nor hangs up holds no worker. */
void fcgi_request_bound_reads(int fd, long long ms);

/* fcgi_request_drain: reads and drops what is left of the request's input,
 * at most FCGI_DRAIN_MAX bytes: bytes left unread are lost at a handoff, and
 * closing a socket with unread bytes resets it under the answer. True when
 * the input ended cleanly. */
#define FCGI_DRAIN_MAX (1024 * 1024)
bool fcgi_request_drain(struct fcgi_request *req);

/* fcgi_request_detach: takes the connection away from libfcgi and moves
 * req into to: libfcgi's buffers and parameters are freed, the descriptor
 * is kept (non-blocking from now on) and libfcgi's next accept starts on a
 * new connection. to owns the descriptor and every copy afterwards, and
 * writes its records with the same writer, without ever blocking (response.h);
 * at most unsent_max bytes wait for a slow web server. req is left empty
 * but for the worker's held buffer, which stays with it. The input is read
 * to its end first. */
void fcgi_request_detach(struct fcgi_request *req, struct fcgi_request *to, size_t unsent_max);

/* fcgi_request_watch: on a detached request, reads what the web server sent
 * (a well-behaved one sends nothing more). Returns PROXY_OK while the
 * connection is quiet, or PROXY_ERR_CLIENT_GONE when it closed or sent
 * FCGI_ABORT_REQUEST (then *aborted is set). */
enum proxy_err fcgi_request_watch(struct fcgi_request *req, bool *aborted);

/* fcgi_request_input_broken: reading the request's input failed (the web
 * server aborted, hung up, or sent what libfcgi cannot read). */
bool fcgi_request_input_broken(const struct fcgi_request *req);

/* fcgi_request_fd: the web server's connection of an attached request, -1 otherwise. */
int fcgi_request_fd(const struct fcgi_request *req);

/* What the web server sent after the request's input, looked at without
 * taking it. */
enum fcgi_input {
    FCGI_INPUT_QUIET, /* nothing (yet) */
    FCGI_INPUT_GONE,  /* FCGI_ABORT_REQUEST, or the connection closed */
    FCGI_INPUT_OTHER, /* bytes that are neither */
};

/* fcgi_request_peek: looks at what waits on an attached request's
 * connection, without blocking and without consuming it. */
enum fcgi_input fcgi_request_peek(const struct fcgi_request *req);

/* fcgi_request_free: frees the copies req owns and gives the response
 * buffer back to held (NULL: freed). A detached connection goes back to
 * req->lobby when the web server keeps it and the response ended cleanly
 * (every byte out, FCGI_END_REQUEST last); otherwise it is closed (broken
 * off first when out.cut: no END_REQUEST, so the web server sees the
 * response fail). */
void fcgi_request_free(struct fcgi_request *req, struct buf *held);

/* fcgi_request_id_acceptable: printable ASCII without spaces, 1..128 chars. */
bool fcgi_request_id_acceptable(const char *id);

/* fcgi_request_id_generate: 32 random lowercase hex characters into out
 * (at least 33 bytes). */
void fcgi_request_id_generate(char *out);

/* fcgi_request_headers_acceptable: false when one HTTP_* parameter of envp
 * (NULL-terminated "NAME=value" strings) has a value longer than max_value,
 * or all of them together exceed max_total bytes. Pure. */
bool fcgi_request_headers_acceptable(char **envp, size_t max_value, size_t max_total);

/* fcgi_request_elapsed_ms: milliseconds since req was loaded. */
long fcgi_request_elapsed_ms(const struct fcgi_request *req);
/* fcgi_request_elapsed_us: the same in microseconds. */
long long fcgi_request_elapsed_us(const struct fcgi_request *req);

#endif
