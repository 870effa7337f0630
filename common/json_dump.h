/* json_dump.h: serializing a JSON value without jansson's silent damage.
 *
 * jansson 2.14's json_dumps() drops an object key whose output buffer could
 * not grow and still returns the rest ({"ttl":7200,":["turn:..."]}), so under
 * memory pressure a reply, a stored row or a signed token body could be
 * damaged JSON. json_dumpb() into a buffer of the right size never grows a
 * buffer, so it cannot drop anything: rtm serializes through it. */
#ifndef RTM_JSON_DUMP_H
#define RTM_JSON_DUMP_H

#include <jansson.h>

/* json_dumps(v, flags), but NULL rather than a damaged text. The result is
 * malloc'd; the caller frees it. Any thread. */
char *rtm_json_dumps(const json_t *v, size_t flags);

#endif
