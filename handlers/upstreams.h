/* upstreams.h: where a deployment's calls go, and what every upstream call
 * of the process shares. One flow server for all (OPENOVA_FLOW_SERVER_URL,
 * or the in-cluster default), or each deployment's own, from its record
 * (the central console: handlers/records.h); libcurl's share of DNS answers
 * and TLS sessions across workers and streams; the client certificate, the
 * upstream token and the --resolve entries of every handle. */
#ifndef OPENOVA_UPSTREAMS_H
#define OPENOVA_UPSTREAMS_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "core/config.h"

/* Connections a handle keeps open for its next calls (a worker's, the
 * stream loop's): a console talks to many Sovereigns, each one a TLS
 * connection worth keeping. */
#define UPSTREAMS_KEPT_CONNECTIONS 32L
/* The longest upstream token; the file is larger only by white space. */
#define UPSTREAMS_TOKEN_MAX 2048

struct upstreams;

/* upstreams_new: after curl_global_init. Opens the records directory and
 * reads the token file (a bad one stops the start, as the credential files
 * do). NULL with a sentence in err. */
struct upstreams *upstreams_new(const struct proxy_config *cfg, char *err, size_t errlen);

/* upstreams_free: NULL-safe; after every handle that used it is gone. */
void upstreams_free(struct upstreams *u);

/* upstreams_reload: SIGHUP: the token file now, whatever its stamp says. */
void upstreams_reload(struct upstreams *u);

enum upstreams_target {
    UPSTREAMS_OK,
    UPSTREAMS_NOT_FOUND,      /* console: no record of the deployment (404) */
    UPSTREAMS_RECORD_INVALID, /* console: the record cannot be read or is not JSON (502) */
    UPSTREAMS_FQDN_INVALID,   /* console: the record names no usable FQDN (502) */
    UPSTREAMS_NOMEM,
};

/* upstreams_base: the base URL of deployment id's calls (no trailing '/').
 * *url is the configured one (*owned NULL), or the deployment's own, made
 * from the template and its record: then *owned holds it for the caller to
 * free. Any result but UPSTREAMS_OK has its reason in why, and nothing may
 * be sent upstream for it. Thread-safe. */
enum upstreams_target upstreams_base(struct upstreams *u, const char *id, const char **url, char **owned, char *why,
                                     size_t whylen);

/* upstreams_configure: what every handle shares: the share of DNS and TLS
 * sessions, the client certificate, the --resolve entries, how many
 * connections it keeps. u may be NULL (nothing is set). */
void upstreams_configure(const struct upstreams *u, CURL *easy);

/* upstreams_authorization: "Bearer TOKEN" of the token file into out;
 * false when no token file is configured. With refresh, the file is read
 * again first when it changed (looked at once a second): the workers do
 * that; the stream loop, whose one thread carries every stream, takes what
 * the workers (or SIGHUP) loaded and never waits on a file. Thread-safe. */
bool upstreams_authorization(struct upstreams *u, bool refresh, char *out, size_t outlen);

/* upstreams_per_deployment: the console's mode (no single upstream to
 * probe). upstreams_records_present: in that mode, whether the records
 * directory is still there (readiness). */
bool upstreams_per_deployment(const struct upstreams *u);
bool upstreams_records_present(const struct upstreams *u);

#endif
