/* api/policy: the per-key dial policy (toll-fraud guard).
 *
 * An API key may carry allow_channels, allow_contexts, allow_extens and
 * deny_extens (globs, case-insensitive; see the config file). A Local
 * channel ("Local/0044...@outbound") dials its own extension in its own
 * context, so those are checked as well: the number a call really reaches
 * cannot slip past the exten rules by hiding in the channel.
 */
#ifndef AMIBRIDGE_API_POLICY_H
#define AMIBRIDGE_API_POLICY_H

#include "core/config.h"

enum policy_field { POLICY_CHANNEL = 0, POLICY_CONTEXT, POLICY_EXTEN };

struct policy_refusal {
    enum policy_field field;
    char rule[192]; /* e.g. "deny_extens: 00*" */
};

/* 0 when `key` (NULL: open mode, no policy) may originate on `channel` to
 * `context`/`exten` (either may be NULL, e.g. for an Application). -1 with
 * `out` filled otherwise. */
int policy_check(const struct cfg_api_key *key, const char *channel, const char *context,
                 const char *exten, struct policy_refusal *out);

#endif
