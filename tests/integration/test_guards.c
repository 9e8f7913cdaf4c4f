/* Integration tests for the guards that look inside an action, on every
 * route that carries the value, with the real binary and the real ami-sim:
 * each request is built to pass a guard that compares the raw JSON, while
 * Asterisk would act on something else (a blank it skips, a '-' it
 * ignores, a name it folds, a function it calls, an application that
 * dials). Every one must be refused with the right problem and field, and
 * nothing may reach the PBX; a plain request still goes through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/http.h"
#include "support/stack.h"
#include "support/testenv.h"

#define CRM   "crm-token-0123456789abcdef"
#define OPS   "ops-token-0123456789abcdef"
#define ADMIN "adm-token-0123456789abcdef"

/* The CRM key has a dial policy; the ops key has every scope and none. */
static const char config_json[] =
    "{\"api_keys\":["
    "{\"name\":\"crm\",\"token\":\"" CRM
    "\",\"scopes\":[\"call\",\"control\",\"actions\",\"read\"],"
    "\"allow_channels\":[\"Local/1??@demo\",\"PJSIP/1???\"],\"allow_contexts\":[\"demo\"],"
    "\"deny_extens\":[\"00*\",\"900*\"],\"allow_applications\":[\"Wait\",\"Dial\"]},"
    "{\"name\":\"ops\",\"token\":\"" OPS
    "\",\"scopes\":[\"call\",\"control\",\"actions\",\"read\"]},"
    "{\"name\":\"adm\",\"token\":\"" ADMIN "\",\"scopes\":[\"admin\"]}]}";

struct row {
    const char *what;
    const char *method, *path, *token, *body;
    long status;
    const char *slug, *field;
};

#define CH "/v1/channels/Local%2F100%40demo-00000001%3B1"

static const struct row rows[] = {
    /* POST /v1/calls */
    {"calls: exten with a leading space", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\" 900\"}", 400,
     "invalid-field", "exten"},
    {"calls: exten with a leading tab", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"\\t0044123456\"}", 400,
     "invalid-field", "exten"},
    {"calls: exten with a leading VT", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"\\u000b900\"}", 400,
     "invalid-field", "exten"},
    {"calls: exten with a trailing blank", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"900 \"}", 400,
     "invalid-field", "exten"},
    {"calls: a dash Asterisk ignores", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"0-044123456\"}", 403,
     "dial-policy", "exten"},
    {"calls: a Local channel dialling a dashed number", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/0-044@demo\",\"context\":\"demo\",\"exten\":\"100\"}", 403,
     "dial-policy", "channel"},
    {"calls: NUL inside the channel", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\\u0000x\",\"context\":\"demo\",\"exten\":\"100\"}", 400,
     "invalid-field", "channel"},
    {"calls: Dial with an option that jumps to a denied number", "POST", "/v1/calls", CRM,
     "{\"channel\":\"PJSIP/1001\",\"application\":\"Dial\","
     "\"data\":\"PJSIP/1002,30,A(\\\\\\\\()G(demo^0044123456^1)\"}",
     403, "dial-policy", "data"},
    {"calls: Dial to a trunk as an application", "POST", "/v1/calls", CRM,
     "{\"channel\":\"PJSIP/1001\",\"application\":\"Dial\",\"data\":\"PJSIP/0044123456@trunk\"}",
     403, "dial-policy", "data"},
    {"calls: an application the key does not list", "POST", "/v1/calls", CRM,
     "{\"channel\":\"PJSIP/1001\",\"application\":\"Playback\",\"data\":\"x\"}", 403, "dial-policy",
     "application"},
    {"calls: application with a leading blank", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"application\":\" MixMonitor\"}", 400, "invalid-field",
     "application"},
    {"calls: application in another case", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"application\":\"mIxMoNiToR\"}", 403, "action-denied",
     "application"},
    {"calls: SHELL in a variable", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\","
     "\"variables\":{\"X\":\"${SHELL(id)}\"}}",
     403, "action-denied", "variables"},
    {"calls: AST_CONFIG in a variable", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\","
     "\"variables\":{\"X\":\"${ast_config(manager.conf,bridge,secret)}\"}}",
     403, "action-denied", "variables"},
    /* the generic route */
    {"actions: Originate exten with a leading blank", "POST", "/v1/actions/Originate", CRM,
     "{\"Channel\":\"Local/100@demo\",\"Context\":\"demo\",\"Exten\":\" 900\",\"Async\":\"true\"}",
     400, "invalid-field", "Exten"},
    {"actions: Originate of Dial to a trunk", "POST", "/v1/actions/Originate", CRM,
     "{\"Channel\":\"Local/100@demo\",\"Application\":\"Dial\",\"Data\":\"PJSIP/0044@trunk\"}", 403,
     "dial-policy", "Data"},
    {"actions: Originate to a dashed number", "POST", "/v1/actions/Originate", CRM,
     "{\"Channel\":\"Local/100@demo\",\"Context\":\"demo\",\"Exten\":\"0-044\"}", 403,
     "dial-policy", "Exten"},
    {"actions: the same header twice in two cases", "POST", "/v1/actions/Originate", CRM,
     "{\"Channel\":\"Local/100@demo\",\"channel\":\"PJSIP/0044@trunk\",\"Context\":\"demo\","
     "\"Exten\":\"100\"}",
     400, "invalid-field", "channel"},
    {"actions: Redirect to a dashed number", "POST", "/v1/actions/Redirect", CRM,
     "{\"Channel\":\"Local/"
     "100@demo-1;1\",\"Context\":\"demo\",\"Exten\":\"9-00\",\"Priority\":\"1\"}",
     403, "dial-policy", "Exten"},
    {"actions: BlindTransfer with a form feed", "POST", "/v1/actions/BlindTransfer", CRM,
     "{\"Channel\":\"Local/100@demo-1;1\",\"Context\":\"demo\",\"Exten\":\"\\f900\"}", 400,
     "invalid-field", "Exten"},
    {"actions: Atxfer to a dashed number", "POST", "/v1/actions/Atxfer", CRM,
     "{\"Channel\":\"Local/100@demo-1;1\",\"Context\":\"demo\",\"Exten\":\"0-0\"}", 403,
     "dial-policy", "Exten"},
    {"actions: QueueAdd of a trunk", "POST", "/v1/actions/QueueAdd", CRM,
     "{\"Queue\":\"sales\",\"Interface\":\"PJSIP/0044123@trunk\"}", 403, "dial-policy",
     "Interface"},
    {"actions: Getvar of AST_CONFIG", "POST", "/v1/actions/Getvar", OPS,
     "{\"Variable\":\"AST_CONFIG(manager.conf,bridge,secret)\"}", 403, "action-denied", "Variable"},
    {"actions: Status with a function", "POST", "/v1/actions/Status", OPS,
     "{\"Variables\":\"CALLERID(num),SHELL(id)\"}", 403, "action-denied", "Variables"},
    {"actions: a global Setvar with a dial policy", "POST", "/v1/actions/Setvar", CRM,
     "{\"Variable\":\"TRUNK\",\"Value\":\"x\"}", 403, "dial-policy", "Channel"},
    {"actions: MixMonitor's Command", "POST", "/v1/actions/MixMonitor", OPS,
     "{\"Channel\":\"Local/100@demo-1;1\",\"File\":\"a.wav\",\"Command\":\"rm -rf /\"}", 403,
     "action-denied", "Command"},
    {"actions: MixMonitor to a path", "POST", "/v1/actions/MixMonitor", OPS,
     "{\"Channel\":\"Local/100@demo-1;1\",\"File\":\"/etc/asterisk/manager.conf\"}", 403,
     "action-denied", "File"},
    {"actions: MixMonitor's File carrying a command", "POST", "/v1/actions/MixMonitor", OPS,
     "{\"Channel\":\"Local/100@demo-1;1\",\"File\":\"x.wav,,/bin/sh -c id\"}", 403, "action-denied",
     "File"},
    {"actions: Originate with a PreDialGoSub", "POST", "/v1/actions/Originate", CRM,
     "{\"Channel\":\"Local/100@demo\",\"Context\":\"demo\",\"Exten\":\"100\",\"Priority\":\"1\","
     "\"PreDialGoSub\":\"intl,0044123456,1\"}",
     403, "dial-policy", "PreDialGoSub"},
    {"actions: a global Setvar behind an empty Channel", "POST", "/v1/actions/Setvar", CRM,
     "{\"Channel\":\"\",\"Variable\":\"TRUNK\",\"Value\":\"00\"}", 403, "dial-policy", "Channel"},
    {"actions: PJSIPShowAuths prints passwords", "POST", "/v1/actions/PJSIPShowAuths", OPS, "{}",
     403, "action-denied", NULL},
    {"actions: DBGet", "POST", "/v1/actions/DBGet", OPS, "{\"Family\":\"cf\",\"Key\":\"1\"}", 403,
     "action-denied", NULL},
    {"actions: AGI", "POST", "/v1/actions/AGI", OPS,
     "{\"Channel\":\"Local/100@demo-1;1\",\"Command\":\"EXEC System id\"}", 403, "action-denied",
     NULL},
    {"actions: agi in lower case", "POST", "/v1/actions/agi", OPS, "{}", 403, "action-denied",
     NULL},
    {"actions: DialplanExtensionAdd", "POST", "/v1/actions/DialplanExtensionAdd", OPS, "{}", 403,
     "action-denied", NULL},
    {"actions: Reload", "POST", "/v1/actions/Reload", OPS, "{}", 403, "action-denied", NULL},
    {"actions: ListCategories", "POST", "/v1/actions/ListCategories", OPS,
     "{\"Filename\":\"/etc/passwd\"}", 403, "action-denied", NULL},
    /* channel routes */
    {"hangup: a regex behind a blank", "DELETE", "/v1/channels/%20%2F.%2A%2F", CRM, NULL, 400,
     "invalid-field", "channel"},
    {"hangup: a regex behind a tab", "DELETE", "/v1/channels/%09%2F.%2A%2F", CRM, NULL, 400,
     "invalid-field", "channel"},
    {"redirect: a dashed number", "POST", CH "/redirect", CRM,
     "{\"context\":\"demo\",\"exten\":\"0-044\",\"priority\":1}", 403, "dial-policy", "exten"},
    {"redirect: context with a blank", "POST", CH "/redirect", CRM,
     "{\"context\":\" demo\",\"exten\":\"100\",\"priority\":1}", 400, "invalid-field", "context"},
    {"blind transfer: exten with a blank", "POST", CH "/blind-transfer", CRM,
     "{\"context\":\"demo\",\"exten\":\" 900\"}", 400, "invalid-field", "exten"},
    {"blind transfer: a dashed number", "POST", CH "/blind-transfer", CRM,
     "{\"context\":\"demo\",\"exten\":\"9-00\"}", 403, "dial-policy", "exten"},
    {"setvar: a function that runs a command", "POST", CH "/variables", OPS,
     "{\"name\":\"shell(id)\",\"value\":\"1\"}", 403, "action-denied", "name"},
    {"getvar: a function on the read route", "GET", CH "/variables/AST_CONFIG(manager.conf,a,b)",
     CRM, NULL, 400, "invalid-field", "name"},
    /* queue routes */
    {"queue member: a trunk", "POST", "/v1/queues/sales/members", CRM,
     "{\"interface\":\"PJSIP/0044123@trunk\"}", 403, "dial-policy", "interface"},
    {"queue member: a Local dialling a dashed number", "POST", "/v1/queues/sales/members", CRM,
     "{\"interface\":\"Local/0-044@demo\",\"name\":\"x\"}", 403, "dial-policy", "interface"},
    {"queue member: with a blank", "POST", "/v1/queues/sales/members", CRM,
     "{\"interface\":\" PJSIP/1001\"}", 400, "invalid-field", "interface"},
    {"queue: a name with a blank", "POST", "/v1/queues/%20sales/members", CRM,
     "{\"interface\":\"PJSIP/1001\"}", 400, "invalid-field", "queue"},
    /* the review of 2026-12-06: Park dials a timed-out call back; drivers
     * unescape; Asterisk cuts long values */
    {"calls: a variable Park dials back when the call times out", "POST", "/v1/calls", CRM,
     "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\","
     "\"variables\":{\"ATTENDEDTRANSFER\":\"PJSIP/0044123456@trunk\"}}",
     403, "dial-policy", "variables"},
    {"setvar: the same on a live channel", "POST", CH "/variables", CRM,
     "{\"name\":\"__BLINDTRANSFER\",\"value\":\"PJSIP/0044123456@trunk\"}", 403, "dial-policy",
     "name"},
    {"actions: Park with a trunk to go back to", "POST", "/v1/actions/Park", CRM,
     "{\"Channel\":\"Local/100@demo-1;1\",\"TimeoutChannel\":\"PJSIP/0044123456@trunk-x\","
     "\"Timeout\":\"1000\"}",
     403, "dial-policy", "TimeoutChannel"},
    {"actions: a number in quotes the driver takes out", "POST", "/v1/actions/Originate", CRM,
     "{\"Channel\":\"PJSIP/1\\\"\\\"001\",\"Context\":\"demo\",\"Exten\":\"100\"}", 403,
     "dial-policy", "Channel"},
    {"actions: a channel longer than Asterisk reads", "POST", "/v1/actions/Originate", OPS,
     "{\"Channel\":\"Local/555/"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@demo/n\","
     "\"Context\":\"demo\",\"Exten\":\"100\"}",
     400, "invalid-field", "Channel"},
    {"queue member: longer than Asterisk keeps", "POST", "/v1/queues/sales/members", OPS,
     "{\"interface\":\"Local/555/"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "@demo/n\"}",
     400, "invalid-field", "interface"},
    {"actions: ConfbridgeStartRecord writes where it is told", "POST",
     "/v1/actions/ConfbridgeStartRecord", OPS,
     "{\"Conference\":\"1\",\"RecordFile\":\"/etc/asterisk/x\"}", 403, "action-denied", NULL},
    {"actions: DAHDIDialOffhook dials what no policy sees", "POST", "/v1/actions/dahdidialoffhook",
     OPS, "{\"DAHDIChannel\":\"1\",\"Number\":\"0044123456\"}", 403, "action-denied", NULL},
    /* a call key is not a control key: applications that hang up, take
     * or join other people's channels (every key) */
    {"calls: SoftHangup of another call's channel", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"application\":\"SoftHangup\","
     "\"data\":\"Local/200@demo-00000000;1\",\"wait\":false}",
     403, "action-denied", "application"},
    {"calls: BridgeAdd into another call", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"application\":\"bridgeadd\","
     "\"data\":\"Local/200@demo-00000000;1\"}",
     403, "action-denied", "application"},
    {"calls: PickupChan of a ringing call", "POST", "/v1/calls", OPS,
     "{\"channel\":\"Local/100@demo\",\"application\":\"PickupChan\","
     "\"data\":\"Local/200@demo-00000000;1\"}",
     403, "action-denied", "application"},
    /* webhooks: a NUL would cut a secret short */
    {"webhook: NUL in the secret", "POST", "/v1/webhooks", ADMIN,
     "{\"url\":\"https://hooks.example.com/x\",\"events\":[\"*\"],"
     "\"secret\":\"0123456789abcdef\\u0000rest-of-the-secret\"}",
     400, "invalid-field", "secret"},
    {"webhook: NUL in the url", "POST", "/v1/webhooks", ADMIN,
     "{\"url\":\"https://hooks.example.com/x\\u0000@10.0.0.1/\",\"events\":[\"*\"]}", 400,
     "invalid-field", "url"},
};

static void check_row(const struct stack *e, const struct row *row)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", e->bridge.url, row->path);
    struct http_resp r;
    http_call(row->method, url, row->token, row->body, NULL, 10000, &r);
    char type[128] = "";
    if (row->slug)
        snprintf(type, sizeof(type), "urn:amibridge:problem:%s", row->slug);
    const char *got_type = http_json_str(&r, "type"), *got_field = http_json_str(&r, "field");
    if (r.status != row->status || (row->slug && (!got_type || strcmp(got_type, type))) ||
        (row->field && (!got_field || strcmp(got_field, row->field))))
        fail_msg("%s: %s %s: expected %ld %s field %s, got %ld: %s", row->what, row->method,
                 row->path, row->status, row->slug ? row->slug : "", row->field ? row->field : "",
                 r.status, r.body ? r.body : r.error);
    http_resp_free(&r);
}

static void every_bypass_is_refused_before_the_pbx(void **state)
{
    (void)state;
    char dir[256], path[300], cfgvar[400];
    assert_int_equal(testenv_tmpdir(dir, sizeof(dir), "guards"), 0);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(config_json, f);
    fclose(f);
    snprintf(cfgvar, sizeof(cfgvar), "AMIBRIDGE_CONFIG=%s", path);
    struct stack e;
    /* no keepalive Ping during the test: every action the PBX sees is one
     * of ours */
    const char *env[] = {cfgvar, "AMIBRIDGE_AMI_KEEPALIVE_MS=600000", NULL};
    assert_int_equal(stack_start(&e, env), 0);
    long base = amisim_stat(e.sim.port, "ActionsTotal");
    long idle = amisim_stat(e.sim.port, "ActionsTotal") - base; /* what asking costs */
    long originates = amisim_stat(e.sim.port, "OriginatesTotal");
    base = amisim_stat(e.sim.port, "ActionsTotal");
    size_t n = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_row(&e, &rows[i]);
        n++;
    }
    assert_true(n > 40);
    assert_int_equal(amisim_stat(e.sim.port, "ActionsTotal") - base, idle);
    assert_int_equal(amisim_stat(e.sim.port, "OriginatesTotal"), originates);

    /* neighbours that Asterisk reads as allowed: the guard is no blanket
     * refusal. A dashed number of an allowed extension goes through. */
    struct row ok[] = {
        {"a plain call", "POST", "/v1/calls", CRM,
         "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1-0-0\"}", 200, NULL,
         NULL},
        {"Dial of an allowed device", "POST", "/v1/calls", CRM,
         "{\"channel\":\"Local/100@demo\",\"application\":\"Dial\",\"data\":\"Local/"
         "101@demo,20,tT\"}",
         200, NULL, NULL},
        {"CALLERID in a variable", "POST", "/v1/calls", OPS,
         "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\","
         "\"variables\":{\"X\":\"${CALLERID(num)}\"}}",
         200, NULL, NULL},
        {"a Local member in the policy", "POST", "/v1/queues/sales/members", CRM,
         "{\"interface\":\"Local/150@demo\",\"name\":\"Ann\"}", 201, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        check_row(&e, &ok[i]);
    assert_true(amisim_stat(e.sim.port, "OriginatesTotal") >= originates + 3);
    stack_stop(&e);
    testenv_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_bypass_is_refused_before_the_pbx),
    };
    return cmocka_run_group_tests_name("guards", tests, NULL, NULL);
}
