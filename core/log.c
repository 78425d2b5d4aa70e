/* log.c: line-atomic logging to stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static const char *level_name(enum proxy_log_level level)
{
    switch (level) {
    case PROXY_LOG_INFO: return "info";
    case PROXY_LOG_WARN: return "warn";
    case PROXY_LOG_ERROR: return "error";
    }
    return "info";
}

void proxy_log(enum proxy_log_level level, const char *rid, const char *fmt, ...)
{
    /* One buffer, one write(2): stderr is shared by every thread and, behind
     * lighttpd, by the web server's own error log. */
    char line[2048];
    int used = rid ? snprintf(line, sizeof line, "openova-flow-fcgi: level=%s rid=%s ", level_name(level), rid)
                   : snprintf(line, sizeof line, "openova-flow-fcgi: level=%s ", level_name(level));
    if (used < 0)
        return;
    size_t len = (size_t)used;
    if (len < sizeof line - 1) {
        va_list ap;
        va_start(ap, fmt);
        int more = vsnprintf(line + len, sizeof line - len, fmt, ap);
        va_end(ap);
        if (more > 0)
            len += (size_t)more;
    }
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
