/* fuzz_records.c: libFuzzer harness for the console's deployment records:
 * records_parse on any bytes (a record is another service's file), and
 * whatever FQDN it accepts is a host name that makes a URL of the default
 * template with nothing but the host in it. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "core/url_template.h"
#include "fuzz.h"
#include "handlers/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char fqdn[HTTP_HOSTNAME_MAX + 1];
    char why[160];
    memset(fqdn, 'x', sizeof fqdn);
    why[0] = '\0';
    enum records_result rc = records_parse((const char *)data, size, fqdn, why, sizeof why);
    CHECK(rc == RECORDS_FOUND || rc == RECORDS_MALFORMED || rc == RECORDS_NO_FQDN || rc == RECORDS_NOMEM ||
          rc == RECORDS_UNREADABLE);
    if (rc != RECORDS_FOUND) {
        CHECK(rc == RECORDS_NOMEM || why[0] != '\0');
        return 0;
    }
    size_t len = strnlen(fqdn, sizeof fqdn);
    CHECK(len < sizeof fqdn && http_hostname_valid(fqdn, len));
    char *url = url_template_expand(URL_TEMPLATE_DEFAULT, fqdn);
    CHECK(url != NULL);
    const char *host = url + strlen("https://");
    /* Nothing after the host: no port, path, user, query or fragment. */
    CHECK(strncmp(url, "https://openova-flow.", 21) == 0 && strcspn(host, "/:@?#%") == strlen(host));
    free(url);
    return 0;
}
