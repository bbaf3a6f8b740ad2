/* import.c -- Kubernetes objects, as `kubectl get ... -o json` prints them, to a mapping file. */
#include "svcmapd/import.h"
#include "svcmapd/file.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import_impl.h"

/* ---- the interface ---- */

char *import_read(const char *path, size_t *lenp, struct diag *d)
{
    bool std = strcmp(path, "-") == 0;
    int fd = std ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    /* A regular file is judged by its size before any read; a pipe has
     * none, and is read to one byte over the limit, no further. */
    struct stat st;
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    int err = -EFBIG;
    char *buf = NULL;
    if (!regular || (uint64_t)st.st_size <= IMPORT_MAX_INPUT)
        buf = file_read_fd(fd, regular ? (size_t)st.st_size : 0, IMPORT_MAX_INPUT, lenp, &err);
    if (!std)
        close(fd);
    if (!buf && err == -EFBIG)
        diag_error(d, 0,
                   "larger than %u MiB, what svcmapd import reads; leave out what is not needed "
                   "(kubectl get services,endpointslices without endpoints, or -n NAMESPACE)",
                   IMPORT_MAX_INPUT >> 20);
    else if (!buf)
        diag_error(d, 0, "cannot read: %s", strerror(-err));
    return buf;
}

static void report_zone_error(void *arg, const struct check_error *err)
{
    diag_error(arg, 0, "%s", err->msg);
}

int import_check_zone(const char *zone, struct diag *d)
{
    char a[CLEAN_MAX];
    if (!imp_is_host_text(zone) || strlen(zone) > 254) {
        diag_error(d, 0, "zone '%s' is not a domain name", imp_clean(a, zone));
        return -1;
    }
    char text[300];
    int n = snprintf(text, sizeof(text), "[server]\nzone = %s\n", zone);
    int errors = imp_check_text(text, (size_t)n, report_zone_error, d);
    if (errors < 0)
        diag_error(d, 0, "out of memory");
    return errors ? -1 : 0;
}

static void import_finish(struct import *im)
{
    for (size_t i = 0; i < im->nentries; i++) {
        struct entry *e = &im->entries[i];
        free(e->notes.p);
        free(e->value);
        free(e->skip);
        free(e->target_ns);
        free(e->target_svc);
    }
    free(im->entries);
    for (int k = 0; k < KIND_COUNT; k++)
        free(im->objs[k]);
}

int import_convert(const char *json, size_t len, const char *zone, struct diag *d, char **out,
                   size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    char lzone[256];
    size_t zl = strlen(zone);
    if (zl > 1 && zone[zl - 1] == '.')
        zl--;
    if (zl >= sizeof(lzone)) {
        diag_error(d, 0, "the zone is too long");
        return -EINVAL;
    }
    for (size_t i = 0; i < zl; i++)
        lzone[i] = (char)tolower((unsigned char)zone[i]);
    lzone[zl] = '\0';
    struct import im = {.d = d, .zone = lzone};

    int rc;
    json_t *root = imp_read_json(json, len, d, &rc);
    if (!root)
        return rc;

    struct text t = {0};
    struct ref *refs = NULL;
    size_t nrefs = 0;
    if (imp_read_list(&im, root) && !im.oom) {
        imp_make_entries(&im);
        if (!d->errors && !im.oom) {
            if (im.nentries)
                qsort(im.entries, im.nentries, sizeof(*im.entries), imp_cmp_entry);
            refs = imp_link_targets(&im, &nrefs);
            rc = imp_render_checked(&im, refs, nrefs, &t);
        }
    }
    if (rc == 0) {
        *out = t.p;
        *out_len = t.len;
        t.p = NULL;
    }
    if (rc != 0 && rc != -EPROTO && (im.oom || t.oom || d->errors == 0)) {
        diag_error(d, 0, "out of memory");
        rc = -ENOMEM;
    }
    free(t.p);
    free(refs);
    import_finish(&im);
    json_decref(root);
    return rc;
}
