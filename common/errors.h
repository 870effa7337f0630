/* errors.h: internal status codes. Functions return 0 or one of these
 * (negative); only the function that decides to fail logs. */
#ifndef RTM_ERRORS_H
#define RTM_ERRORS_H

enum rtm_err {
    RTM_OK = 0,
    RTM_ENOMEM = -1,
    RTM_EINVAL = -2,    /* bad argument or malformed input */
    RTM_ENOTFOUND = -3,
    RTM_EEXISTS = -4,
    RTM_ESTORE = -5,    /* sqlite failure */
    RTM_EDENIED = -6,   /* not allowed (revoked, outside the key's scope) */
    RTM_ECRYPTO = -7,
    RTM_ELIMIT = -8,    /* a configured bound was hit */
    RTM_EFULL = -9,     /* the store's disk is full: nothing was written, retry later */
    RTM_EBUSY = -10,    /* the store is locked by another writer: nothing was written, retry later */
    RTM_EUNAVAILABLE = -11, /* cluster mode: Redis cannot take it now */
};

const char *rtm_err_str(int err);

#endif
