/* error.h: the one error enum of the development flow server and its texts.
 * Out-of-memory policy for the whole program: an allocation failure fails
 * the one request that needed it (500 before the response head, end of the
 * stream after it); the process keeps serving. */
#ifndef OPENOVA_DS_ERROR_H
#define OPENOVA_DS_ERROR_H

enum ds_err {
    DS_OK = 0,
    DS_ERR_NOMEM,
    DS_ERR_JSON,      /* the body is not one JSON value */
    DS_ERR_SCHEMA,    /* JSON, but not a valid message */
    DS_ERR_NOT_FOUND, /* the flow was never ingested, or was purged */
    DS_ERR_ARG,       /* a caller broke a function's contract */
    DS_ERR_LAGGED,    /* a subscriber fell further behind than the ring holds */
    DS_ERR_PURGED,    /* the flow of a subscriber was purged */
    DS_ERR_SHUTDOWN,  /* the server is stopping */
};

/* ds_strerror: a static, human-readable text for err; never NULL. */
const char *ds_strerror(enum ds_err err);

#endif
