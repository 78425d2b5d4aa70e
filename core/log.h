/* log.h: one line per event on stderr, which web servers collect as their
 * error log. Every line of a request carries its request id. */
#ifndef OPENOVA_LOG_H
#define OPENOVA_LOG_H

enum proxy_log_level { PROXY_LOG_INFO, PROXY_LOG_WARN, PROXY_LOG_ERROR };

/* proxy_log: writes "openova-flow-fcgi: level=L [rid=ID] <message>" as one
 * write(2), so lines from concurrent threads never interleave. rid may be
 * NULL for process-wide events. Long messages are truncated, never split. */
void proxy_log(enum proxy_log_level level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
