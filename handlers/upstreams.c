/* upstreams.c: the upstream of each deployment, and libcurl's share, the
 * client certificate and the upstream token of every call. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/watched_file.h"
#include "core/log.h"
#include "core/url_template.h"
#include "handlers/records.h"
#include "handlers/upstreams.h"

/* The token as read, with its references (auth/watched_file.h). */
struct token {
    atomic_uint refs;
    char text[];
};

struct upstreams {
    const struct proxy_config *cfg;
    struct records *records;     /* the console's mode; else NULL */
    CURLSH *share;               /* DNS answers and TLS sessions, for every handle */
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST]; /* one per kind of shared data, as libcurl asks */
    struct curl_slist *resolve;  /* OPENOVA_FLOW_RESOLVE, one entry per item */
    EVP_MD *sha256;
    struct watched_set token_files;
    struct watched_file token_file; /* its current is a struct token; all zero without a file */
};

/* ---- the upstream token file ---- */

/* RFC 6750 2.1's b64token: what may follow "Bearer " on the line. */
static bool token_valid(const char *t, size_t len)
{
    size_t i = 0;
    while (i < len && (isalnum((unsigned char)t[i]) || strchr("-._~+/", t[i])))
        i++;
    if (i == 0)
        return false;
    while (i < len && t[i] == '=')
        i++;
    return i == len;
}

static void *parse_token(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        len--;
    size_t start = 0;
    while (start < len && isspace((unsigned char)buf[start]))
        start++;
    if (len - start > UPSTREAMS_TOKEN_MAX || !token_valid(buf + start, len - start)) {
        proxy_say(err, errlen, "upstream token file %s: must hold one bearer token (RFC 6750 characters, at most %d)",
                  path, UPSTREAMS_TOKEN_MAX);
        return NULL;
    }
    struct token *t = malloc(sizeof *t + len - start + 1);
    if (!t) {
        proxy_say(err, errlen, "upstream token file %s: out of memory", path);
        return NULL;
    }
    atomic_init(&t->refs, 1);
    memcpy(t->text, buf + start, len - start);
    t->text[len - start] = '\0';
    return t;
}

static void retain_token(void *content)
{
    atomic_fetch_add(&((struct token *)content)->refs, 1);
}

static void release_token(void *content)
{
    struct token *t = content;
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    OPENSSL_cleanse(t->text, strlen(t->text));
    free(t);
}

static size_t count_token(const void *content)
{
    (void)content;
    return 1;
}

static const struct watched_kind token_file_kind = {
    .what = "upstream token file",
    .items = "token",
    .max = UPSTREAMS_TOKEN_MAX + 256, /* room for white space around it */
    .parse = parse_token,
    .retain = retain_token,
    .release = release_token,
    .count = count_token,
};

bool upstreams_authorization(struct upstreams *u, bool refresh, char *out, size_t outlen)
{
    if (!u || !u->token_file.kind)
        return false;
    if (refresh)
        watched_set_refresh_if_due(&u->token_files);
    struct token *t = watched_file_acquire(&u->token_file);
    if (!t)
        return false;
    proxy_say(out, outlen, "Bearer %s", t->text);
    release_token(t);
    return true;
}

/* ---- libcurl's share ---- */

static void share_lock(CURL *easy, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)easy;
    (void)access;
    pthread_mutex_lock(&((struct upstreams *)ctx)->locks[data]);
}

static void share_unlock(CURL *easy, curl_lock_data data, void *ctx)
{
    (void)easy;
    pthread_mutex_unlock(&((struct upstreams *)ctx)->locks[data]);
}

/* DNS answers and TLS sessions, never connections: libcurl does not support
 * one connection cache used by concurrent threads, so each worker and the
 * stream loop keep their own connections (UPSTREAMS_KEPT_CONNECTIONS) and
 * resume TLS sessions any of them began. A lock is held only while libcurl
 * reads or writes the shared cache, never during a transfer. */
static bool share_start(struct upstreams *u)
{
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&u->locks[i], NULL);
    u->share = curl_share_init();
    return u->share && curl_share_setopt(u->share, CURLSHOPT_LOCKFUNC, share_lock) == CURLSHE_OK &&
           curl_share_setopt(u->share, CURLSHOPT_UNLOCKFUNC, share_unlock) == CURLSHE_OK &&
           curl_share_setopt(u->share, CURLSHOPT_USERDATA, u) == CURLSHE_OK &&
           curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) == CURLSHE_OK &&
           curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK;
}

void upstreams_configure(const struct upstreams *u, CURL *easy)
{
    if (!u)
        return;
    curl_easy_setopt(easy, CURLOPT_SHARE, u->share);
    curl_easy_setopt(easy, CURLOPT_MAXCONNECTS, UPSTREAMS_KEPT_CONNECTIONS);
    if (u->resolve)
        curl_easy_setopt(easy, CURLOPT_RESOLVE, u->resolve);
    if (u->cfg->client_cert) {
        curl_easy_setopt(easy, CURLOPT_SSLCERT, u->cfg->client_cert);
        curl_easy_setopt(easy, CURLOPT_SSLKEY, u->cfg->client_key ? u->cfg->client_key : u->cfg->client_cert);
    }
}

/* OPENOVA_FLOW_RESOLVE (checked by config_load) as libcurl's list. */
static bool resolve_list(struct upstreams *u)
{
    const char *p = u->cfg->resolve, *item;
    size_t len;
    while ((item = config_list_item(&p, &len))) {
        char entry[512]; /* a host name, a port and an address: far shorter */
        snprintf(entry, sizeof entry, "%.*s", (int)len, item);
        struct curl_slist *grown = curl_slist_append(u->resolve, entry);
        if (!grown)
            return false;
        u->resolve = grown;
    }
    return true;
}

/* ---- the whole ---- */

/* The client certificate and key are read by libcurl at each handshake: a
 * file that cannot be read would fail every call, so the start says so. */
static bool client_files_readable(const struct proxy_config *cfg, char *err, size_t errlen)
{
    const struct {
        const char *name, *path;
    } files[] = {{"OPENOVA_FLOW_CLIENT_CERT", cfg->client_cert}, {"OPENOVA_FLOW_CLIENT_KEY", cfg->client_key}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (files[i].path && access(files[i].path, R_OK) != 0) {
            proxy_say(err, errlen, "%s: cannot read %s: %s", files[i].name, files[i].path, strerror(errno));
            return false;
        }
    }
    return true;
}

struct upstreams *upstreams_new(const struct proxy_config *cfg, char *err, size_t errlen)
{
    struct upstreams *u = calloc(1, sizeof *u);
    if (!u) {
        proxy_say(err, errlen, "out of memory");
        return NULL;
    }
    u->cfg = cfg;
    watched_set_init(&u->token_files);
    if (!share_start(u) || !resolve_list(u)) {
        proxy_say(err, errlen, "cannot set up libcurl's share: out of memory");
        goto fail;
    }
    if (!client_files_readable(cfg, err, errlen))
        goto fail;
    if (cfg->upstream_mode == UPSTREAM_PER_DEPLOYMENT && !(u->records = records_open(cfg->deployments_dir, err, errlen)))
        goto fail;
    if (cfg->upstream_token_file) {
        if (!(u->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
            proxy_say(err, errlen, "upstream token file: OpenSSL has no SHA-256");
            goto fail;
        }
        if (watched_file_open(&u->token_file, &u->token_files, &token_file_kind, cfg->upstream_token_file,
                              u->sha256, err, errlen) != PROXY_OK)
            goto fail;
    }
    return u;
fail:
    upstreams_free(u);
    return NULL;
}

void upstreams_free(struct upstreams *u)
{
    if (!u)
        return;
    watched_set_destroy(&u->token_files);
    EVP_MD_free(u->sha256);
    records_close(u->records);
    curl_share_cleanup(u->share);
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&u->locks[i]);
    curl_slist_free_all(u->resolve);
    free(u);
}

void upstreams_reload(struct upstreams *u)
{
    if (u && u->token_file.kind)
        watched_set_reload(&u->token_files);
}

bool upstreams_per_deployment(const struct upstreams *u)
{
    return u && u->records;
}

bool upstreams_records_present(const struct upstreams *u)
{
    return u && u->records && records_present(u->records);
}

enum upstreams_target upstreams_base(struct upstreams *u, const char *id, const char **url, char **owned, char *why,
                                     size_t whylen)
{
    *owned = NULL;
    *url = u->cfg->upstream_url;
    if (!u->records)
        return UPSTREAMS_OK;
    char fqdn[HTTP_HOSTNAME_MAX + 1];
    switch (records_lookup(u->records, id, fqdn, why, whylen)) {
    case RECORDS_FOUND:
        break;
    case RECORDS_NOT_FOUND:
        return UPSTREAMS_NOT_FOUND;
    case RECORDS_UNREADABLE:
    case RECORDS_MALFORMED:
        return UPSTREAMS_RECORD_INVALID;
    case RECORDS_NO_FQDN:
        return UPSTREAMS_FQDN_INVALID;
    case RECORDS_NOMEM:
        return UPSTREAMS_NOMEM;
    }
    if (!(*owned = url_template_expand(u->cfg->upstream_template, fqdn))) {
        proxy_say(why, whylen, "out of memory");
        return UPSTREAMS_NOMEM;
    }
    *url = *owned;
    return UPSTREAMS_OK;
}
