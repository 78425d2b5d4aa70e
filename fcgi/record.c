/* record.c: FastCGI record framing, a response broken off, and the abort
 * scanner. */
#include <sys/socket.h>
#include <unistd.h>

#include "fcgi/record.h"

void fcgi_record_header(unsigned char out[FCGI_HEADER_LEN], unsigned type, unsigned request_id, size_t content_len)
{
    out[0] = FCGI_VERSION_1;
    out[1] = (unsigned char)type;
    out[2] = (unsigned char)((request_id >> 8) & 0xff);
    out[3] = (unsigned char)(request_id & 0xff);
    out[4] = (unsigned char)((content_len >> 8) & 0xff);
    out[5] = (unsigned char)(content_len & 0xff);
    out[6] = 0; /* no padding: alignment is only a recommendation */
    out[7] = 0;
}

void fcgi_record_end_request(unsigned char out[FCGI_RECORD_END_LEN], unsigned request_id, unsigned app_status)
{
    fcgi_record_header(out, FCGI_STDOUT, request_id, 0);
    fcgi_record_header(out + FCGI_HEADER_LEN, FCGI_END_REQUEST, request_id, sizeof(FCGI_EndRequestBody));
    out[16] = (unsigned char)((app_status >> 24) & 0xff);
    out[17] = (unsigned char)((app_status >> 16) & 0xff);
    out[18] = (unsigned char)((app_status >> 8) & 0xff);
    out[19] = (unsigned char)(app_status & 0xff);
    out[20] = FCGI_REQUEST_COMPLETE;
    out[21] = out[22] = out[23] = 0;
}

void fcgi_record_break(int fd)
{
    static const unsigned char invalid[FCGI_HEADER_LEN] = {0}; /* version 0 */
    ssize_t ignored = write(fd, invalid, sizeof invalid);
    (void)ignored;
    shutdown(fd, SHUT_RDWR);
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
        if (s->header_have < FCGI_HEADER_LEN)
            continue;
        s->header_have = 0;
        unsigned type = s->header[1];
        unsigned id = ((unsigned)s->header[2] << 8) | s->header[3];
        s->skip = (((size_t)s->header[4] << 8) | s->header[5]) + s->header[6];
        if (type == FCGI_ABORT_REQUEST && id == s->request_id)
            s->aborted = true;
    }
    return s->aborted;
}
