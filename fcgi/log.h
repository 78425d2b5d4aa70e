/* log.h: one line per event on stderr, which web servers collect as their
 * error log. Every line of a request carries its request id. */
#ifndef OPENOVA_LOG_H
#define OPENOVA_LOG_H

enum fcgi_log_level { FCGI_LOG_INFO, FCGI_LOG_WARN, FCGI_LOG_ERROR };

/* fcgi_log: writes "openova-flow-fcgi: level=L [rid=ID] <message>" as one
 * write(2), so lines from concurrent threads never interleave. rid may be
 * NULL for process-wide events. Long messages are truncated, never split. */
void fcgi_log(enum fcgi_log_level level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
