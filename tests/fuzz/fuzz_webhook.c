/* libFuzzer target for webhook subscriptions: a JSON body checked as a
 * create, a patch and a stored subscription, and the URL check with the
 * SSRF guard. Whatever is accepted must survive its own stored form
 * unchanged (what the store hands back is never looser than the API). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/webhook_sub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct netlist_net *allow;
    static size_t nallow;
    if (!allow) {
        char err[128];
        if (netlist_parse("127.0.0.0/8 fd00:1::/64", &allow, &nallow, err, sizeof(err)))
            abort();
    }
    /* the URL check alone, on the raw bytes */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char detail[256];
    if (wh_url_check(text, allow, nallow, detail, sizeof(detail)) != 0 && !detail[0])
        abort();
    free(text);

    json_t *o = json_loadb((const char *)data, size, 0, NULL);
    if (!o)
        return 0;
    for (int mode = WH_CREATE; mode <= WH_STORED; mode++) {
        struct wh_conf c;
        struct wh_problem pb;
        memset(&c, 0, sizeof(c));
        memset(&pb, 0, sizeof(pb));
        int rc = wh_conf_apply(&c, o, (enum wh_mode)mode, allow, nallow, &pb);
        if (rc == -1 && !pb.detail[0])
            abort();
        if (rc == 0 && c.url && c.nevents && (mode != WH_CREATE || 1)) {
            if (!c.secret)
                c.secret = strdup("0123456789abcdef");
            if (!c.id[0])
                strcpy(c.id, "wh_fuzz");
            json_t *stored = wh_conf_json(&c, 1);
            if (!stored)
                abort();
            json_object_del(stored, "static");
            struct wh_conf back;
            memset(&back, 0, sizeof(back));
            if (wh_conf_apply(&back, stored, WH_STORED, allow, nallow, &pb) != 0)
                abort();
            if (strcmp(back.url, c.url) || back.nevents != c.nevents || back.nfilter != c.nfilter ||
                strcmp(back.secret, c.secret) || back.enabled != c.enabled ||
                back.scheme != c.scheme || back.nprev > c.nprev)
                abort();
            wh_conf_free(&back);
            json_decref(stored);
        }
        wh_conf_free(&c);
    }
    /* the API's PATCH (rotation included) on a subscription that exists:
     * a refusal names its member and changes nothing */
    struct wh_conf base;
    struct wh_problem pb;
    memset(&base, 0, sizeof(base));
    memset(&pb, 0, sizeof(pb));
    json_t *seed = json_pack("{s:s,s:[s],s:s}", "url", "https://crm.example/h", "events", "*",
                             "secret", "fuzz-secret-0123456789");
    if (!seed || wh_conf_apply(&base, seed, WH_CREATE, allow, nallow, &pb) != 0)
        abort();
    json_decref(seed);
    struct wh_conf next;
    if (wh_conf_copy(&next, &base) == 0) {
        int rc = wh_conf_patch(&next, o, 3600, 1800000000, allow, nallow, &pb);
        if (rc == -1 && (!pb.detail[0] || strcmp(next.secret, base.secret) || next.nprev))
            abort();
        if (rc == 0 && next.nprev > 1)
            abort();
        wh_conf_free(&next);
    }
    wh_conf_free(&base);
    json_decref(o);
    return 0;
}
