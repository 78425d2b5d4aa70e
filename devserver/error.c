/* error.c: texts for the development flow server's error codes. */
#include "error.h"

const char *ds_strerror(enum ds_err err)
{
    switch (err) {
    case DS_OK: return "ok";
    case DS_ERR_NOMEM: return "out of memory";
    case DS_ERR_JSON: return "not valid JSON";
    case DS_ERR_SCHEMA: return "not a valid message";
    case DS_ERR_NOT_FOUND: return "flow not found";
    case DS_ERR_ARG: return "invalid argument";
    case DS_ERR_LAGGED: return "subscriber fell behind the ring";
    case DS_ERR_PURGED: return "flow purged";
    case DS_ERR_SHUTDOWN: return "server stopping";
    }
    return "unknown error";
}
