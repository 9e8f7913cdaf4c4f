/* admit/policy: what an action may ask of Asterisk, judged on what Asterisk
 * will act on (admit/astval), before it is sent.
 *
 * One function, policy_action(), holds every rule that looks inside an
 * action, for every route (calls, channels, queues, the generic route):
 * - each value as Asterisk reads it: no NUL or control byte, no leading
 *   or trailing blank, no blank at all in a name (channel, context, ...);
 * - dialplan functions (${...}, $[...], variable names ending in ')') only
 *   from AMIBRIDGE_ALLOW_FUNCTIONS and never from AMIBRIDGE_DENY_FUNCTIONS;
 * - Originate of an application on AMIBRIDGE_DENY_ORIGINATE_APPS is denied,
 *   and so are the fields of an action that run commands or write files
 *   (MixMonitor's Command, a File outside the recording folder, Queue's AGI);
 * - variables that Asterisk turns into commands or files (MONITOR_*, ...)
 *   are never set;
 * - the per-key dial policy (toll-fraud guard): allow_channels,
 *   allow_contexts, allow_extens, deny_extens, allow_applications and
 *   allow_variables (globs, case-insensitive), checked on everything that
 *   places audio somewhere: Originate's channel, extension or application
 *   (whose data and options are policed when it dials: Dial, Page, Queue,
 *   ...), Redirect, transfers, queue member interfaces, MessageSend, and on
 *   the variables that steer the dialplan (*_SEND_SUB, GOSUB_RESULT, ...). A Local channel is
 * checked for the extension and context it dials; another channel's number-like parts for
 *   deny_extens. Extensions are compared without '-' (Asterisk ignores
 *   it), and deny_extens also without blanks, '.', '(' and ')'.
 */
#ifndef AMIBRIDGE_API_POLICY_H
#define AMIBRIDGE_API_POLICY_H

#include "ami/message.h"
#include "core/config.h"

enum policy_verdict {
    POLICY_OK = 0,
    POLICY_INVALID, /* 400 invalid-field: the value is not what it looks like */
    POLICY_DENIED,  /* 403 action-denied: a deny rule of the service */
    POLICY_DIAL,    /* 403 dial-policy: the key's dial policy */
};

struct policy_refusal {
    char field[64];   /* the AMI header ("Channel", "Data", ...) */
    char rule[192];   /* e.g. "deny_extens: 00*" */
    char detail[320]; /* what is wrong, to follow the field's name: "starts with a blank" */
};

/* 1 when `key` carries a dial policy (any of its lists is set). */
int policy_has_rules(const struct cfg_api_key *key);

/* The rules above for the action `m` sent with `key` (NULL: open mode, no
 * dial policy) under the service's `cfg`. POLICY_OK, or the verdict with
 * `out` filled. */
enum policy_verdict policy_action(const struct cfg *cfg, const struct cfg_api_key *key,
                                  const struct ami_msg *m, struct policy_refusal *out);

#endif
