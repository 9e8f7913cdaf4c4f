/* The live dashboard: web/index.html, app.js and style.css, embedded in the
 * binary at build time (no runtime file lookups, nothing from elsewhere).
 * The page holds no secret, so it needs no key; what it shows comes from
 * the API with the key the user types into it. */
#include "api/internal.h"

extern const unsigned char web_index_html[], web_app_js[], web_style_css[];
extern const size_t web_index_html_len, web_app_js_len, web_style_css_len;

/* The page loads only itself: no inline code, no other origin. */
#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static void asset(struct http_req *r, const char *type, const unsigned char *body, size_t len)
{
    http_req_add_header(r, "Content-Security-Policy", DASHBOARD_CSP);
    http_req_add_header(r, "X-Content-Type-Options", "nosniff");
    http_req_add_header(r, "Referrer-Policy", "no-referrer");
    http_req_add_header(r, "X-Frame-Options", "DENY");
    http_respond(r, 200, type, (const char *)body, len);
}

void api_dashboard_page(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)a;
    (void)p;
    asset(r, "text/html; charset=utf-8", web_index_html, web_index_html_len);
}

void api_dashboard_js(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)a;
    (void)p;
    asset(r, "text/javascript; charset=utf-8", web_app_js, web_app_js_len);
}

void api_dashboard_css(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)a;
    (void)p;
    asset(r, "text/css; charset=utf-8", web_style_css, web_style_css_len);
}
