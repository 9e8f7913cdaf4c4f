#include "support/stack.h"

#include <stdlib.h>
#include <string.h>

#include "ami/message.h"
#include "support/net.h"

int stack_start(struct stack *st, const char *const *env)
{
    memset(st, 0, sizeof(*st));
    if (amisim_start(&st->sim, NULL) || bridge_start(&st->bridge, st->sim.port, env))
        return -1;
    return bridge_wait_status(&st->bridge, "/readyz", 200, 5000) >= 0 ? 0 : -1;
}

void stack_stop(struct stack *st)
{
    bridge_stop(&st->bridge, 0);
    amisim_stop(&st->sim);
}

long amisim_stat(int port, const char *key)
{
    struct net_client c;
    if (net_connect(&c, "127.0.0.1", port, 2000) ||
        net_login(&c, "bridge", "bridgesecret", "off", 2000))
        return -1;
    net_sendf(&c, "Action: SimStats\r\nActionID: st\r\n\r\n");
    struct ami_msg *m = NULL;
    long v = -1;
    if (net_wait_response(&c, "st", 2000, &m) == 1 && ami_msg_get(m, key))
        v = strtol(ami_msg_get(m, key), NULL, 10);
    ami_msg_free(m);
    net_close(&c);
    return v;
}
