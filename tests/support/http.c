#include "support/http.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/strbuf.h"

struct sink {
    struct strbuf body, headers;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct sink *s = ud;
    return strbuf_append(&s->body, p, sz * n) ? 0 : sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct sink *s = ud;
    return strbuf_append(&s->headers, p, sz * n) ? 0 : sz * n;
}

static struct curl_slist *setup(CURL *h, const char *method, const char *url, const char *token,
                                const char *body, const char *ctype, long timeout_ms,
                                struct sink *sink, const char *extra1, const char *extra2)
{
    struct curl_slist *hdrs = NULL;
    if (extra1)
        hdrs = curl_slist_append(hdrs, extra1);
    if (extra2)
        hdrs = curl_slist_append(hdrs, extra2);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, sink);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    /* a test that serves HTTPS with its own certificate names it here */
    const char *ca = getenv("AMIBRIDGE_TEST_CA");
    if (ca && *ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (token) {
        char a[512];
        snprintf(a, sizeof(a), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, a);
    }
    if (body) {
        char ct[256];
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

static void finish(CURL *h, CURLcode rc, struct sink *sink, struct http_resp *out)
{
    memset(out, 0, sizeof(*out));
    if (rc != CURLE_OK)
        snprintf(out->error, sizeof(out->error), "%s", curl_easy_strerror(rc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &out->seconds);
    out->body = strbuf_detach(&sink->body, &out->len);
    out->headers = strbuf_detach(&sink->headers, NULL);
    json_error_t e;
    out->json = out->len ? json_loadb(out->body, out->len, 0, &e) : NULL;
}

int http_call(const char *method, const char *url, const char *token, const char *body,
              const char *ctype, long timeout_ms, struct http_resp *out)
{
    CURL *h = curl_easy_init();
    struct sink sink;
    strbuf_init(&sink.body, 0);
    strbuf_init(&sink.headers, 0);
    struct curl_slist *hdrs =
        setup(h, method, url, token, body, ctype, timeout_ms, &sink, NULL, NULL);
    CURLcode rc = curl_easy_perform(h);
    finish(h, rc, &sink, out);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return out->status ? 0 : -1;
}

void http_resp_free(struct http_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

char *http_resp_header(const struct http_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && !strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(p + len - v));
        }
        p = eol ? eol + 2 : p + len;
    }
    return NULL;
}

const char *http_json_str(const struct http_resp *r, const char *key)
{
    return r->json ? json_string_value(json_object_get(r->json, key)) : NULL;
}

int http_batch(struct http_batch_item *items, size_t n, const char *token, int max_conns,
               long timeout_ms)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_conns);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_conns);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)max_conns);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    CURL **handles = calloc(n, sizeof(*handles));
    struct sink *sinks = calloc(n, sizeof(*sinks));
    struct curl_slist **hdrs = calloc(n, sizeof(*hdrs));
    for (size_t i = 0; i < n; i++) {
        handles[i] = curl_easy_init();
        strbuf_init(&sinks[i].body, 0);
        strbuf_init(&sinks[i].headers, 0);
        hdrs[i] = setup(handles[i], items[i].method, items[i].url, token, items[i].body, NULL,
                        timeout_ms, &sinks[i], items[i].header, items[i].header2);
        curl_easy_setopt(handles[i], CURLOPT_PRIVATE, (char *)(uintptr_t)(i + 1));
        curl_multi_add_handle(m, handles[i]);
    }
    int running = 1, failed = 0;
    while (running) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            size_t i = (size_t)(uintptr_t)priv - 1;
            finish(msg->easy_handle, msg->data.result, &sinks[i], &items[i].resp);
            if (!items[i].resp.status)
                failed++;
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, handles[i]);
        curl_easy_cleanup(handles[i]);
        curl_slist_free_all(hdrs[i]);
    }
    free(handles);
    free(sinks);
    free(hdrs);
    curl_multi_cleanup(m);
    return failed ? -1 : 0;
}

double http_metric(const char *base_url, const char *series)
{
    char url[256];
    snprintf(url, sizeof(url), "%.200s/metrics", base_url);
    struct http_resp r;
    http_call("GET", url, NULL, NULL, NULL, 5000, &r);
    double v = 0;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p;) {
        if (!strncmp(p, series, n) && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    http_resp_free(&r);
    return v;
}

long http_event_field(const char *event_json, const char *name)
{
    json_t *o = json_loads(event_json, 0, NULL);
    const char *v = json_string_value(json_object_get(json_object_get(o, "fields"), name));
    long n = v ? atol(v) : -1;
    json_decref(o);
    return n;
}
