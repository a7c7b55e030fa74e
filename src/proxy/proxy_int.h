/* proxy_int.h: private to src/proxy: what hop.c reads of the proxy proxy.c owns. */
#ifndef PARLEY_PROXY_INT_H
#define PARLEY_PROXY_INT_H

#include "proxy/proxy.h"

struct route *proxy__route(const struct proxy *p);
struct transport *proxy__tp(const struct proxy *p);

#endif
