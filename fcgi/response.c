/* response.c: response heads, bodies and JSON errors through libfcgi. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "response.h"

const char *fcgi_status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

int fcgi_response_format_head(struct fcgi_buf *out, int status, const char *request_id, const char *extra,
                              size_t extra_len)
{
    const char *reason = fcgi_status_reason(status);
    int rc = fcgi_buf_appendf(out, "Status: %d%s%s\r\nX-Request-ID: %s\r\n", status, *reason ? " " : "", reason,
                              request_id);
    if (!rc && extra && extra_len)
        rc = fcgi_buf_append(out, extra, extra_len);
    if (!rc)
        rc = fcgi_buf_append(out, "\r\n", 2);
    return rc;
}

char *fcgi_error_json(const char *code, const char *message, const char *request_id)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "error", json_object_new_string(code));
    json_object_object_add(o, "message", json_object_new_string(message));
    json_object_object_add(o, "requestId", json_object_new_string(request_id));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = text ? strdup(text) : NULL;
    json_object_put(o);
    return copy;
}

enum fcgi_err fcgi_response_head(struct fcgi_request *req, int status, const char *extra, size_t extra_len)
{
    if (req->head_sent)
        return FCGI_OK;
    struct fcgi_buf head;
    fcgi_buf_init(&head, 256 * 1024);
    enum fcgi_err err = FCGI_OK;
    int rc = fcgi_response_format_head(&head, status, req->request_id, extra, extra_len);
    if (rc)
        err = rc == -2 ? FCGI_ERR_NOMEM : FCGI_ERR_UPSTREAM_TOO_LARGE;
    else if (FCGX_PutStr(head.data, (int)head.len, req->fcgx->out) != (int)head.len)
        err = FCGI_ERR_CLIENT_GONE;
    if (!err) {
        req->head_sent = true;
        req->status = status;
    }
    fcgi_buf_free(&head);
    return err;
}

enum fcgi_err fcgi_response_write(struct fcgi_request *req, const void *data, size_t len)
{
    /* FCGX_PutStr takes an int: feed it in slices. */
    const char *p = data;
    while (len > 0) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        if (FCGX_PutStr(p, n, req->fcgx->out) != n)
            return FCGI_ERR_CLIENT_GONE;
        p += n;
        len -= (size_t)n;
        req->bytes_out += (unsigned long long)n;
    }
    return FCGI_OK;
}

enum fcgi_err fcgi_response_flush(struct fcgi_request *req)
{
    return FCGX_FFlush(req->fcgx->out) == 0 ? FCGI_OK : FCGI_ERR_CLIENT_GONE;
}

enum fcgi_err fcgi_response_error(struct fcgi_request *req, int status, const char *code, const char *message,
                                  const char *extra_header)
{
    if (req->head_sent)
        return FCGI_OK;
    req->error_code = code;
    char *body = fcgi_error_json(code, message, req->request_id);
    if (!body)
        return FCGI_ERR_NOMEM;
    struct fcgi_buf extra;
    fcgi_buf_init(&extra, 4096);
    enum fcgi_err err = FCGI_OK;
    int rc = fcgi_buf_appendf(&extra, "Content-Type: application/json\r\nContent-Length: %zu\r\n%s", strlen(body),
                              extra_header ? extra_header : "");
    if (rc)
        err = FCGI_ERR_NOMEM;
    if (!err)
        err = fcgi_response_head(req, status, extra.data, extra.len);
    if (!err)
        err = fcgi_response_write(req, body, strlen(body));
    fcgi_buf_free(&extra);
    free(body);
    return err;
}
