/* listen.c: creates the two listeners (one lws vhost each) and keeps the
 * public one within its share of the request-header pool.
 *
 * Design: the public vhost gets a copy of the broker's protocol table whose
 * callback is public_cb, which counts and then hands every event to the
 * broker's own callback unchanged. A connection counts as a handshake from
 * its accept (FILTER_NETWORK_CONNECTION, which knows the address, then
 * WSI_CREATE, which knows the wsi: lws calls them back to back) until it
 * becomes a WebSocket session (ESTABLISHED; lws drops its header space right
 * after) or is destroyed. A plain HTTP connection counts for its whole life:
 * it may hold header space for any of its requests. Counting at accept is the
 * only place a refusal costs nothing (no header space, no TLS, no response);
 * the kernel's accept queue stays drained.
 *
 * TLS (tls-cert, tls-key): lws loads the files when the vhost is created and
 * hands us each vhost's SSL_CTX (OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS).
 * SIGHUP reloads them: the handler only sets a flag and wakes the loop
 * (lws_cancel_service); on the loop (EVENT_WAIT_CANCELLED) the new pair is
 * loaded and checked in a scratch SSL_CTX first and only then swapped into
 * the live one in one call (SSL_CTX_use_cert_and_key), so a half-written or
 * mismatched pair leaves the running certificate in place. lws's own
 * lws_tls_cert_updated() loads the files straight into the live context and
 * ignores failures (a new certificate with the old key breaks every
 * handshake), so it is not used. Connections already open keep the
 * certificate they were made with. */
#include "listen.h"

#include "broker.h"
#include "config.h"
#include "htab.h"
#include "ipcount.h"
#include "log.h"
#include "metrics.h"
#include "../mint-api/mint.h" /* not common/mint.h */
#include "server.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TLS of the listeners: one per process. The SSL_CTXs belong to lws. */
static struct {
    const struct rtm_config *cfg;
    SSL_CTX *ctx[2]; /* public, backend; NULL when plain */
    int n;
} tls;
static volatile sig_atomic_t hup;
static struct lws_context *tls_ctx_owner; /* woken by SIGHUP */

/* The backend's protocol table with backend_cb in front (TLS events only). */
static struct lws_protocols backend_protos[2];
static lws_callback_function *backend_inner;

/* The public listener's handshake budget: one per process. */
static struct {
    const struct rtm_config *cfg;
    lws_callback_function *inner;   /* the broker's callback */
    struct lws_protocols protos[2]; /* the broker's table with public_cb in front */
    struct htab by_ip;              /* ip -> rtm_ipcount (n >= 1) */
    struct htab by_wsi;             /* wsi -> rtm_ipcount: connections counted */
    struct rtm_ipcount *accepted;   /* counted at FILTER_NETWORK_CONNECTION, not yet given a wsi */
    int total;
    int refusing;                   /* a refusal is being logged: once per episode, not per connection */
} budget;

static void ip_string(const struct lws_filter_network_conn_args *a, char *out, size_t n)
{
    *out = '\0';
    if (a->cli_addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->cli_addr)->sin_addr, out, (socklen_t)n);
    else if (a->cli_addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->cli_addr)->sin6_addr, out, (socklen_t)n);
}

static void release(struct rtm_ipcount *c)
{
    budget.total--;
    rtm_gauges[RTM_G_HANDSHAKES] = budget.total;
    rtm_ipcount_drop(&budget.by_ip, c);
    if (budget.refusing && budget.total < budget.cfg->max_handshakes) {
        budget.refusing = 0;
        log_info("rtmd: public handshakes back under their budget (%d)", budget.total);
    }
}

static int refuse(const char *ip, const char *why, enum rtm_counter_id counter)
{
    rtm_metric_inc(counter, 1);
    if (!budget.refusing) {
        budget.refusing = 1;
        log_warn("rtmd: refusing public connections at accept: %s (first from %s)", why, ip);
    }
    return 1;
}

/* 0 to accept, non-zero to close the socket unanswered. */
static int on_accept(const struct lws_filter_network_conn_args *a)
{
    if (budget.accepted) { /* the last accept never got its wsi (adoption failed) */
        release(budget.accepted);
        budget.accepted = NULL;
    }
    char ip[64];
    ip_string(a, ip, sizeof ip);
    if (!*ip) snprintf(ip, sizeof ip, "unknown");
    if (budget.total >= budget.cfg->max_handshakes)
        return refuse(ip, "max-handshakes reached", RTM_M_HANDSHAKES_REFUSED_TOTAL);
    /* a trusted reverse proxy speaks for many clients: only the total applies */
    if (rtm_ipcount_get(&budget.by_ip, ip) >= budget.cfg->max_handshakes_per_ip &&
        !rtm_cidr_match(budget.cfg->trusted_cidrs, budget.cfg->n_trusted_proxies, ip))
        return refuse(ip, "max-handshakes-per-ip reached", RTM_M_HANDSHAKES_REFUSED_PER_IP);
    struct rtm_ipcount *c = rtm_ipcount_add(&budget.by_ip, ip);
    if (!c) return 1;
    budget.total++;
    rtm_gauges[RTM_G_HANDSHAKES] = budget.total;
    budget.accepted = c;
    return 0;
}

static void on_wsi_create(struct lws *wsi)
{
    struct rtm_ipcount *c = budget.accepted;
    if (!c) return; /* not an accepted connection (the listening socket) */
    budget.accepted = NULL;
    if (htab_put(&budget.by_wsi, wsi, c)) release(c); /* out of memory: uncounted rather than leaked */
}

static void on_handshake_over(struct lws *wsi)
{
    struct rtm_ipcount *c = htab_del(&budget.by_wsi, wsi);
    if (c) release(c);
}

static void on_hup(int sig)
{
    (void)sig;
    hup = 1;
    /* lws_cancel_service is what the loop's own signal handlers call: a
     * write to lws's wake-up pipe, safe in a handler. */
    if (tls_ctx_owner) lws_cancel_service(tls_ctx_owner);
}

static void log_tls_error(const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    log_error("rtmd: TLS reload: %s %s: %s; the current certificate stays", what, path, buf[0] ? buf : "unknown error");
}

/* Loads and checks cert + key in a scratch context, then swaps them into
 * every live one. 0, or -1 (logged; nothing changed). */
static int tls_reload(void)
{
    const char *cert = tls.cfg->tls_cert, *key = tls.cfg->tls_key;
    SSL_CTX *tmp = SSL_CTX_new(TLS_server_method());
    int rc = -1;
    if (!tmp) {
        log_tls_error("out of memory for", cert);
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(tmp, cert) != 1) {
        log_tls_error("cannot read the certificate chain", cert);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(tmp, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(tmp) != 1) {
        log_tls_error("cannot use the key (unreadable, or not the certificate's)", key);
        goto out;
    }
    X509 *x = SSL_CTX_get0_certificate(tmp);
    EVP_PKEY *k = SSL_CTX_get0_privatekey(tmp);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(tmp, &chain);
    for (int i = 0; i < tls.n; i++) {
        if (SSL_CTX_use_cert_and_key(tls.ctx[i], x, k, chain, 1) != 1) {
            log_tls_error("cannot install the new pair from", cert);
            goto out;
        }
    }
    char subject[256] = "?";
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
    const ASN1_TIME *na = X509_get0_notAfter(x);
    struct tm tm;
    char until[32] = "?";
    if (na && ASN1_TIME_to_tm(na, &tm)) strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_info("rtmd: TLS certificate reloaded from %s: subject=\"%s\" until=%s", cert, subject, until);
    rc = 0;
out:
    SSL_CTX_free(tmp);
    return rc;
}

/* Events every listener's wrapper handles the same way. */
static void common_event(enum lws_callback_reasons reason, void *user)
{
    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS && user && tls.n < 2) {
        tls.ctx[tls.n++] = user;
    } else if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED && hup) {
        hup = 0;
        if (tls.n) tls_reload();
        else log_info("rtmd: SIGHUP: no TLS certificate to reload");
    }
}

static int backend_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    common_event(reason, user);
    return backend_inner(wsi, reason, user, in, len);
}

static int public_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    common_event(reason, user);
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        /* The broker's own accept rule (connects per IP per minute) first. */
        int rc = budget.inner(wsi, reason, user, in, len);
        if (rc || !user) return rc;
        return on_accept(user);
    }
    case LWS_CALLBACK_WSI_CREATE:
        on_wsi_create(wsi);
        break;
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_WSI_DESTROY:
        on_handshake_over(wsi);
        break;
    default:
        break;
    }
    return budget.inner(wsi, reason, user, in, len);
}

/* SIGHUP reloads the certificate (or says there is none): never the
 * default action, which would end the daemon. Installed once. */
static void watch_hup(struct rtm_server *srv)
{
    if (tls_ctx_owner) return;
    tls.cfg = srv->cfg;
    tls_ctx_owner = srv->lws;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
}

void rtm_listen_context_options(const struct rtm_config *cfg, struct lws_context_creation_info *info)
{
    if (cfg->tls_cert) info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
}

static struct lws_vhost *listen_on(struct rtm_server *srv, const char *name, const char *addr,
                                   const struct lws_protocols *protocols,
                                   const struct lws_http_mount *mounts, int head_timeout_sec, int use_tls)
{
    char host[256];
    int port;
    if (rtm_config_split_addr(addr, host, sizeof host, &port)) return NULL;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = name;
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    info.mounts = mounts;
    /* Without DISABLE_IPV6 lws ignores iface and listens on every address. */
    if (!strchr(host, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    /* Browser security headers belong on what browsers load; the backend
     * API's callers are servers, and every reply there would carry ~450 bytes. */
    if (mounts) info.options |= LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    /* No lws validity timer per connection: the broker pings idle sessions
     * itself (limits.c, on the one timer heap). lws's default policy re-arms
     * a timer in its single sorted list on every connection's traffic, and
     * that insert walks the list: O(connections) per message. */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity;
    info.keepalive_timeout = 30;
    info.timeout_secs = 20; /* a client that stalls mid-request is dropped */
    /* From accept to a complete request head (lws's "ah idle" timeout, 10 s by default). */
    if (head_timeout_sec > 0) info.timeout_secs_ah_idle = (unsigned)head_timeout_sec;
    if (use_tls) {
        /* lws 4.1.6 reads this option from the vhost's info too, not only the
         * context's: without it the vhost stays plain, silently. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        /* HTTP/1.1 only: lws advertises h2 by default, and a browser then
         * carries the WebSocket inside an h2 stream, where the broker's
         * pre-framed, coalesced writes (LWS_WRITE_RAW) kill the connection
         * at the first reply (measured with Chromium 156: 1006 after the
         * welcome). */
        info.alpn = "http/1.1";
        info.ssl_cert_filepath = srv->cfg->tls_cert;
        info.ssl_private_key_filepath = srv->cfg->tls_key;
    }
    watch_hup(srv);
    struct lws_vhost *vh = lws_create_vhost(srv->lws, &info);
    if (!vh) {
        if (use_tls)
            log_error("rtmd: cannot listen on %s %s with TLS (port taken, not a local address, or %s / %s "
                      "unreadable or not a pair)", name, addr, srv->cfg->tls_cert, srv->cfg->tls_key);
        else
            log_error("rtmd: cannot listen on %s %s (port taken, or not a local address)", name, addr);
        return NULL;
    }
    log_info("rtmd: %s listener ready on %s://%s", name, use_tls ? "https" : "http", addr);
    return vh;
}

int rtm_listen_public(struct rtm_server *srv)
{
    const struct lws_protocols *p = brk_protocols();
    budget.cfg = srv->cfg;
    budget.inner = p[0].callback;
    budget.protos[0] = p[0];
    budget.protos[0].callback = public_cb;
    memset(&budget.protos[1], 0, sizeof budget.protos[1]);
    htab_init(&budget.by_ip, HTAB_STR);
    htab_init(&budget.by_wsi, HTAB_PTR);
    srv->public_vh = listen_on(srv, "public", srv->cfg->public_addr, budget.protos, brk_mounts(srv),
                               srv->cfg->handshake_timeout_sec, srv->cfg->tls_cert != NULL);
    return srv->public_vh ? 0 : -1;
}

int rtm_listen_backend(struct rtm_server *srv)
{
    const struct lws_protocols *p = mint_protocols();
    backend_inner = p[0].callback;
    backend_protos[0] = p[0];
    backend_protos[0].callback = backend_cb;
    memset(&backend_protos[1], 0, sizeof backend_protos[1]);
    srv->backend_vh = listen_on(srv, "backend", srv->cfg->backend_addr, backend_protos, NULL, 0, srv->cfg->backend_tls);
    return srv->backend_vh ? 0 : -1;
}

void rtm_listen_free(void)
{
    rtm_ipcount_free(&budget.by_ip);
    htab_free(&budget.by_wsi);
    budget.accepted = NULL;
    budget.total = 0;
    tls.n = 0;
    tls_ctx_owner = NULL;
}
