/*
 * daemon.c: the node's life cycle on its libuv loop: data directory, signals, reload.
 *
 * Design.  p2psipd_start() takes the data directory (created if missing, locked with a
 * POSIX record lock so a second daemon on the same directory refuses to start rather
 * than interleave writes), then starts one uv_signal_t per signal.  SIGTERM and SIGINT
 * call p2psipd_stop(), which closes every handle the daemon owns; with nothing left on
 * the loop uv_run() returns and main() can check that uv_loop_close() returns 0.
 * SIGHUP rebuilds the configuration the way main() built it (defaults, --config file,
 * command line) and applies what can change without a restart.
 *
 * Invariants.  Every handle started here is closed by p2psipd_stop(); the lock is
 * released only by p2psipd_free(), after the loop has ended, so a restarted daemon
 * never overlaps the old one's last database writes.
 */
#include "p2psipd.h"

#include "bindings_db.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char lock_name[] = "p2psipd.lock";
static const char db_name[] = "p2psip.db";

int p2psipd_mkdirs(const char *dir)
{
    char path[CONF_PATH_MAX];
    size_t len = strlen(dir);

    if (len == 0)
        return -EINVAL;
    if (len >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    /* Create each missing component in turn; an existing one is fine. */
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -errno;
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/*
 * Takes an exclusive fcntl lock on dir/p2psipd.lock and writes our pid into it.  The
 * lock dies with the process, so a crashed daemon never leaves a stale lock.
 */
static int lock_data_dir(struct p2psipd *d)
{
    char path[CONF_PATH_MAX + sizeof(lock_name) + 1];
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    char pid[32];
    int fd, n;

    snprintf(path, sizeof(path), "%s/%s", d->conf.data_dir, lock_name);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        p2p_err(d->log, "cannot open %s: %s", path, strerror(-rc));
        return rc;
    }
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int rc = (errno == EACCES || errno == EAGAIN) ? -EBUSY : -errno;
        struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (rc == -EBUSY && fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
            p2p_err(d->log, "data directory %s is in use by another p2psipd (pid %ld)",
                    d->conf.data_dir, (long)who.l_pid);
        else
            p2p_err(d->log, "cannot lock %s: %s", path, strerror(-rc));
        close(fd);
        return rc;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)n) != n)
        p2p_warn(d->log, "cannot write our pid into %s: %s", path, strerror(errno));
    d->lock_fd = fd;
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct p2psipd *d = h->data;

    if (signum == SIGHUP) {
        p2p_notice(d->log, "SIGHUP: reloading the configuration");
        (void)p2psipd_reload(d);
        return;
    }
    p2p_notice(d->log, "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    p2psipd_stop(d);
}

int p2psipd_start(struct p2psipd *d, uv_loop_t *loop, struct p2p_log *log, const struct conf *conf,
                  const struct conf_args *args)
{
    uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
    const int signums[] = {SIGTERM, SIGINT, SIGHUP};
    size_t started = 0;
    int rc;

    memset(d, 0, sizeof(*d));
    d->loop = loop;
    d->log = log;
    d->conf = *conf;
    d->args = *args;
    d->lock_fd = -1;

    rc = p2psipd_mkdirs(d->conf.data_dir);
    if (rc != 0) {
        p2p_err(log, "cannot create data directory %s: %s", d->conf.data_dir, strerror(-rc));
        return rc;
    }
    rc = lock_data_dir(d);
    if (rc != 0)
        return rc;
    {
        char path[CONF_PATH_MAX + sizeof(db_name) + 1];
        char err[CONF_ERR_MAX];
        snprintf(path, sizeof(path), "%s/%s", d->conf.data_dir, db_name);
        rc = bindings_db_open(&d->db, path, err, sizeof(err));
        if (rc != 0) {
            p2p_err(log, "%s", err);
            return rc;
        }
    }

    for (started = 0; started < 3; started++) {
        rc = uv_signal_init(loop, sigs[started]);
        if (rc == 0) {
            sigs[started]->data = d;
            rc = uv_signal_start(sigs[started], on_signal, signums[started]);
            if (rc != 0)
                uv_close((uv_handle_t *)sigs[started], NULL);
        }
        if (rc != 0) {
            p2p_err(log, "cannot watch signal %d: %s", signums[started], uv_strerror(rc));
            while (started-- > 0)
                uv_close((uv_handle_t *)sigs[started], NULL);
            return rc;
        }
    }
    rc = uv_timer_init(loop, &d->stop_timer);
    if (rc != 0) {
        p2p_err(log, "cannot create a timer: %s", uv_strerror(rc));
        while (started-- > 0)
            uv_close((uv_handle_t *)sigs[started], NULL);
        return rc;
    }
    d->stop_timer.data = d;
    d->started = true;
    rc = p2psipd__control_start(d);
    /* Metrics next: a listener that cannot bind stops the start before the node
     * shows itself to the network; nothing is scraped before the loop runs. */
    if (rc == 0)
        rc = p2psipd__metrics_start(d);
    if (rc == 0)
        rc = p2psipd__sip_start(d);
    if (rc == 0)
        rc = p2psipd__overlay_start(d);
    if (rc == 0)
        rc = p2psipd__overlay_register(d);
    if (rc != 0) {
        p2psipd_stop(d); /* closes what was opened; uv_run() then returns */
        return rc;
    }
    return 0;
}

void p2psipd_stop(struct p2psipd *d)
{
    if (!d->started || d->stopping)
        return;
    d->stopping = true;
    p2psipd__control_stop(d); /* first: no request reaches a part that is closing */
    p2psipd__metrics_stop(d); /* and no scrape */
    /* The overlay first: its pending operations complete while the SIP side lives. */
    p2psipd__overlay_stop(d);
    p2psipd__sip_stop(d);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->stop_timer, NULL);
}

static void stop_requested(uv_timer_t *t)
{
    struct p2psipd *d = t->data;

    p2p_notice(d->log, "control socket: stop requested: stopping");
    p2psipd_stop(d);
}

void p2psipd__stop_soon(struct p2psipd *d)
{
    if (d->started && !d->stopping)
        (void)uv_timer_start(&d->stop_timer, stop_requested, 0, 0);
}

static bool same_listen(const struct conf_sip *a, const struct conf_sip *b)
{
    if (a->listen_count != b->listen_count)
        return false;
    for (size_t i = 0; i < a->listen_count; i++) {
        if (strcmp(a->listen[i].host, b->listen[i].host) != 0)
            return false;
    }
    return true;
}

static bool same_p2p(const struct conf_p2p *a, const struct conf_p2p *b)
{
    if (a->port != b->port || a->server != b->server || a->server_count != b->server_count)
        return false;
    for (size_t i = 0; i < a->server_count; i++) {
        if (a->servers[i].port != b->servers[i].port ||
            strcmp(a->servers[i].host, b->servers[i].host) != 0)
            return false;
    }
    return true;
}

static bool same_domains(const struct conf_sip *a, const struct conf_sip *b)
{
    if (a->domain_any != b->domain_any || a->domain_count != b->domain_count)
        return false;
    for (size_t i = 0; i < a->domain_count; i++) {
        if (strcmp(a->domain[i], b->domain[i]) != 0)
            return false;
    }
    return true;
}

/*
 * Keeps the settings that need a restart at their running values in *next, and says
 * which ones the new configuration wanted to change.
 */
static void keep_restart_only(struct p2psipd *d, struct conf *next)
{
    const struct conf *cur = &d->conf;

    if (next->sip.port != cur->sip.port || !same_listen(&next->sip, &cur->sip) ||
        next->sip.transports != cur->sip.transports)
        p2p_warn(d->log, "reload: sip.port, sip.listen and sip.transports need a restart; "
                         "keeping the running values");
    if (!same_domains(&next->sip, &cur->sip))
        p2p_warn(d->log, "reload: sip.domain needs a restart; keeping the running value");
    if (strcmp(next->data_dir, cur->data_dir) != 0)
        p2p_warn(d->log, "reload: data_dir needs a restart; keeping %s", cur->data_dir);
    if (strcmp(next->control, cur->control) != 0)
        p2p_warn(d->log, "reload: control needs a restart; keeping %s", cur->control);
    if (next->metrics.port != cur->metrics.port ||
        (next->metrics.port != 0 && strcmp(next->metrics.addr.host, cur->metrics.addr.host) != 0))
        p2p_warn(d->log, "reload: metrics_listen needs a restart; keeping the running value");
    if (next->timers.t1_ms != cur->timers.t1_ms || next->timers.t2_ms != cur->timers.t2_ms ||
        next->timers.t4_ms != cur->timers.t4_ms)
        p2p_warn(d->log, "reload: timers.* need a restart; keeping the running values");
    if (strcmp(next->log.trace_pcap, cur->log.trace_pcap) != 0 ||
        next->log.trace_pcap_max != cur->log.trace_pcap_max)
        p2p_warn(d->log, "reload: log.trace_pcap and log.trace_pcap_max need a restart; "
                         "keeping the running values");
    if (!same_p2p(&next->p2p, &cur->p2p))
        p2p_warn(d->log, "reload: p2p.* need a restart; keeping the running values");
    /* The registrar's policy and the accounts are applied by p2psipd__sip_reconfigure();
     * the keep-alive schedule and the proxy policy live in the proxy, built once. */
    if (next->registrar.options_keepalive != cur->registrar.options_keepalive ||
        next->registrar.keepalive_remove != cur->registrar.keepalive_remove)
        p2p_warn(d->log, "reload: registrar.options_keepalive and keepalive_remove need a "
                         "restart; keeping the running values");
    if (next->proxy.forward_foreign != cur->proxy.forward_foreign ||
        next->proxy.foreign_reply != cur->proxy.foreign_reply)
        p2p_warn(d->log, "reload: proxy.* need a restart; keeping the running values");
    next->registrar.options_keepalive = cur->registrar.options_keepalive;
    next->registrar.keepalive_remove = cur->registrar.keepalive_remove;
    next->proxy = cur->proxy;
    next->sip = cur->sip;
    memcpy(next->data_dir, cur->data_dir, sizeof(next->data_dir));
    memcpy(next->control, cur->control, sizeof(next->control));
    next->metrics = cur->metrics;
    next->timers = cur->timers;
    next->p2p = cur->p2p;
    memcpy(next->log.trace_pcap, cur->log.trace_pcap, sizeof(next->log.trace_pcap));
    next->log.trace_pcap_max = cur->log.trace_pcap_max;
}

int p2psipd_reload(struct p2psipd *d)
{
    struct conf next;
    char err[CONF_ERR_MAX];
    int rc;

    if (d->stopping)
        return 0;
    rc = conf_build(&next, &d->args, err, sizeof(err));
    if (rc != 0) {
        p2p_err(d->log, "reload failed, configuration unchanged: %s", err);
        return -EINVAL;
    }
    keep_restart_only(d, &next);
    /* Accounts and registrar policy first: if the accounts file is bad, nothing changes. */
    if (p2psipd__sip_reconfigure(d, &next) != 0) {
        p2p_err(d->log, "reload failed, configuration unchanged");
        return -EINVAL;
    }
    /* Said before the new log settings apply, so that it reaches the old log. */
    p2p_notice(d->log, "configuration reloaded from %s",
               d->args.config_path ? d->args.config_path : "the command line");

    /* The log is main()'s; switching between stderr and syslog is safe between lines. */
    if (next.log.syslog != d->log->use_syslog) {
        const char *ident = d->log->ident;
        p2p_log_close(d->log);
        p2p_log_init(d->log, ident, next.log.level, next.log.syslog);
    }
    d->log->level = next.log.level;
    d->log->limit_burst = next.log.burst;
    d->log->limit_rate = next.log.rate;

    d->conf = next;
    d->reloads++;
    return 0;
}

void p2psipd_free(struct p2psipd *d)
{
    p2psipd__sip_free(d);
    p2psipd__overlay_free(d); /* the store uses the database's connection */
    bindings_db_close(d->db);
    d->db = NULL;
    if (d->lock_fd >= 0) {
        close(d->lock_fd);
        d->lock_fd = -1;
    }
}
