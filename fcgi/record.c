/* record.c: FastCGI record framing for the stream loop. */
#include "fcgi/record.h"

void fcgi_record_header(unsigned char out[FCGI_REC_HEADER_LEN], unsigned type, unsigned request_id,
                        size_t content_len)
{
    out[0] = 1; /* FCGI_VERSION_1 */
    out[1] = (unsigned char)type;
    out[2] = (unsigned char)((request_id >> 8) & 0xff);
    out[3] = (unsigned char)(request_id & 0xff);
    out[4] = (unsigned char)((content_len >> 8) & 0xff);
    out[5] = (unsigned char)(content_len & 0xff);
    out[6] = 0; /* no padding: alignment is only a recommendation */
    out[7] = 0;
}

void fcgi_record_end_request(unsigned char out[24], unsigned request_id, unsigned app_status)
{
    fcgi_record_header(out, FCGI_REC_STDOUT, request_id, 0);
    fcgi_record_header(out + 8, FCGI_REC_END_REQUEST, request_id, 8);
    out[16] = (unsigned char)((app_status >> 24) & 0xff);
    out[17] = (unsigned char)((app_status >> 16) & 0xff);
    out[18] = (unsigned char)((app_status >> 8) & 0xff);
    out[19] = (unsigned char)(app_status & 0xff);
    out[20] = 0; /* FCGI_REQUEST_COMPLETE */
    out[21] = out[22] = out[23] = 0;
}

bool fcgi_record_scan(struct fcgi_record_scanner *s, const unsigned char *data, size_t len)
{
    size_t i = 0;
    while (i < len && !s->aborted) {
        if (s->skip) {
            size_t n = len - i < s->skip ? len - i : s->skip;
            s->skip -= n;
            i += n;
            continue;
        }
        s->header[s->header_have++] = data[i++];
        if (s->header_have < FCGI_REC_HEADER_LEN)
            continue;
        s->header_have = 0;
        unsigned type = s->header[1];
        unsigned id = ((unsigned)s->header[2] << 8) | s->header[3];
        s->skip = (((size_t)s->header[4] << 8) | s->header[5]) + s->header[6];
        if (type == FCGI_REC_ABORT_REQUEST && id == s->request_id)
            s->aborted = true;
    }
    return s->aborted;
}
