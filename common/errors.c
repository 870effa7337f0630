/* errors.c: names for the internal status codes (for log lines only). */
#include "errors.h"

const char *rtm_err_str(int err)
{
    switch (err) {
    case RTM_OK: return "ok";
    case RTM_ENOMEM: return "out of memory";
    case RTM_EINVAL: return "invalid input";
    case RTM_ENOTFOUND: return "not found";
    case RTM_EEXISTS: return "already exists";
    case RTM_ESTORE: return "store error";
    case RTM_EDENIED: return "denied";
    case RTM_ECRYPTO: return "crypto error";
    case RTM_ELIMIT: return "limit reached";
    case RTM_EFULL: return "store full";
    case RTM_EBUSY: return "store locked";
    case RTM_EUNAVAILABLE: return "cluster unavailable";
    }
    return "unknown error";
}
