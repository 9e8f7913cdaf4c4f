/* support/stack: ami-sim and an amibridge logged in to it, the pair most
 * integration tests start, and the simulator's counters.
 *
 *   struct stack st;
 *   const char *env[] = {"AMIBRIDGE_API_KEYS=...", NULL};
 *   if (stack_start(&st, env) == 0) { ... st.bridge.url, st.sim.port ... }
 *   stack_stop(&st);
 */
#ifndef AMIBRIDGE_TEST_STACK_H
#define AMIBRIDGE_TEST_STACK_H

#include "support/amisim.h"
#include "support/bridge.h"

struct stack {
    struct amisim sim;
    struct bridge bridge;
};

/* Start both (`env` as bridge_start() takes it) and wait for /readyz 200. */
int stack_start(struct stack *st, const char *const *env);
void stack_stop(struct stack *st);
/* A SimStats counter of the simulator on `port`; -1 when it has none (an
 * action never seen) or cannot be asked. */
long amisim_stat(int port, const char *key);

#endif
