/*
 * p2psipctl.c: the command-line client of p2psipd's control socket.
 *
 *     p2psipctl [--control PATH] [--data-dir DIR] [--config FILE] [--json]
 *               [--timeout S] COMMAND [ARGS...] [--NAME VALUE...]
 *
 * Design.  One request, one answer: the words after COMMAND are its "args", each
 * --NAME VALUE (or --NAME=VALUE) after it one of its "opts" (an integer literal is
 * sent as a number, --NAME with no value as true), and the answer's result is printed
 * either as the raw JSON (--json) or in a generic readable form: an object as aligned
 * "key: value" lines (nested objects flattened to a.b), an array of objects as a
 * table with one column per key, a string raw (the "metrics" text), other scalars as
 * themselves.  Nothing here knows what a command returns, so a command the daemon
 * gains needs no change here.  "watch"
 * prints the event lines as they come until interrupted or until the daemon stops.
 * The socket path is found the way p2psipd finds it (conf_build's rules, from the
 * same p2p_conf code): --control, else the control key of --config, else
 * DIR/control.sock with DIR from --data-dir, the file's data_dir, or the default.
 * Protocol: docs/CONTROL.md.  Plain blocking sockets and poll(); no event loop.
 *
 * Exit status: 0 ok; 1 the daemon answered an error; 2 usage (bad option, bad
 * configuration file, path too long); 3 cannot connect, or the connection failed
 * (closed or timed out before the answer).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../control.h" /* the protocol's limits, shared with the daemon */
#include "p2p/buf.h"
#include "p2p/conf.h"

#ifndef P2PSIPD_VERSION
#define P2PSIPD_VERSION "unknown"
#endif

enum {
    EXIT_OK = 0,
    EXIT_ERROR = 1,   /* the daemon answered ok = false */
    EXIT_USAGE = 2,   /* command line, configuration file */
    EXIT_CONNECT = 3, /* cannot connect, or the connection failed */
};

#define TABLE_COLS_MAX 32 /* columns shown for an array of objects */
#define KEY_WIDTH_MAX 40  /* "key: value" alignment stops here */

static const char prog[] = "p2psipctl";

struct options {
    const char *control, *data_dir, *config;
    bool json;
    double timeout_s;
    const char *command;
    json_t *args, *opts;
};

static void usage(FILE *f, const char *default_path)
{
    fprintf(f,
            "Usage: %s [options] COMMAND [ARGS...] [--NAME VALUE...]\n"
            "Asks the p2psipd on this host (its control socket) and prints the answer.\n"
            "\n"
            "Options, before COMMAND:\n"
            "  --control PATH   the control socket (default here: %s)\n"
            "  --data-dir DIR   the daemon's data directory: DIR/control.sock\n"
            "  --config FILE    the daemon's configuration file (its control, data_dir)\n"
            "  --json           print the result as JSON (may also follow COMMAND)\n"
            "  --timeout S      seconds to wait for the answer (default 10; 0 = no limit)\n"
            "  -h, --help       this text\n"
            "  -V, --version    version\n"
            "\n"
            "Commands (the daemon's \"help\" lists what it knows; any other word is sent\n"
            "as it is):\n"
            "  status                   the node: version, uptime, ID, role, counts\n"
            "  leafset                  the leaf set: predecessors and successors\n"
            "  routes                   the routing table's entries\n"
            "  peers                    the nodes we have a secure channel with\n"
            "  records                  the DHT records this node stores\n"
            "  counters                 every counter: overlay, DHT, SIP, control\n"
            "  metrics                  counters and latency histograms, Prometheus text\n"
            "  put KEY VALUE [--ttl S]  store a signed record under KEY\n"
            "  get KEY                  the live values under KEY\n"
            "  remove KEY               remove our value under KEY\n"
            "  route KEY                the node responsible for KEY, and the hops\n"
            "  watch                    print the daemon's events until interrupted\n"
            "  pipe-ping ID [--via ID]  an echo over a pipe to node ID (through its super-node)\n"
            "  ping, help               liveness; the daemon's list of commands\n"
            "\n"
            "After COMMAND, --NAME VALUE or --NAME=VALUE is an option of the command (a\n"
            "number is sent as a number, --NAME alone as true) and \"--\" ends them.\n"
            "Exit status: 0 ok, 1 the daemon answered an error, 2 usage, 3 cannot connect\n"
            "(or no answer).  See p2psipctl(1).\n",
            prog, default_path != NULL ? default_path : "none (give --control)");
}

/* ---------------------------------------------------------------------------------
 * Command line. */

/* An option's text as the JSON value sent: integer literal -> number, else string. */
static json_t *opt_value(const char *text)
{
    const char *p = text[0] == '-' ? text + 1 : text;
    char *end;
    long long v;

    if (*p >= '0' && *p <= '9') {
        errno = 0;
        v = strtoll(text, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer((json_int_t)v);
    }
    return json_string(text);
}

/* The words after COMMAND: args, --NAME VALUE opts, --json, "--". */
static int parse_command_words(struct options *o, int argc, char **argv, int i)
{
    bool opts_done = false;

    for (; i < argc; i++) {
        const char *w = argv[i];
        json_t *v;
        if (!opts_done && strcmp(w, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (!opts_done && strcmp(w, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (opts_done || strncmp(w, "--", 2) != 0 || w[2] == '\0') {
            v = json_string(w);
            if (v == NULL || json_array_append_new(o->args, v) != 0) {
                fprintf(stderr, "%s: argument '%.64s' is not valid UTF-8\n", prog, w);
                return -EINVAL;
            }
            continue;
        }
        {
            const char *name = w + 2, *eq = strchr(name, '=');
            char key[CONTROL_CMD_NAME_MAX * 2];
            size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
            if (nlen == 0 || nlen >= sizeof(key)) {
                fprintf(stderr, "%s: bad option '%.64s'\n", prog, w);
                return -EINVAL;
            }
            memcpy(key, name, nlen);
            key[nlen] = '\0';
            if (eq != NULL)
                v = opt_value(eq + 1);
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                v = opt_value(argv[++i]);
            else
                v = json_true();
            if (v == NULL || json_object_set_new(o->opts, key, v) != 0) {
                fprintf(stderr, "%s: option '%.64s' is not valid UTF-8\n", prog, w);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* Our own options, up to COMMAND.  Returns 0, 1 for --help/--version done, -EINVAL. */
static int parse_args(struct options *o, int argc, char **argv, bool *help)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *w = argv[i], *value = NULL;
        static const char *const with_value[] = {"control", "data-dir", "config", "timeout"};
        const char *name;
        size_t k, nlen;

        if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
            *help = true;
            return 1;
        }
        if (strcmp(w, "-V") == 0 || strcmp(w, "--version") == 0) {
            printf("%s %s\n", prog, P2PSIPD_VERSION);
            return 1;
        }
        if (strcmp(w, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            i++;
            break;
        }
        if (w[0] != '-')
            break;
        if (strncmp(w, "--", 2) != 0) {
            fprintf(stderr, "%s: unknown option '%.64s'\n", prog, w);
            return -EINVAL;
        }
        name = w + 2;
        nlen = strcspn(name, "=");
        for (k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
            if (strlen(with_value[k]) == nlen && strncmp(with_value[k], name, nlen) == 0)
                break;
        }
        if (k == sizeof(with_value) / sizeof(with_value[0])) {
            fprintf(stderr, "%s: unknown option '%.64s'\n", prog, w);
            return -EINVAL;
        }
        if (name[nlen] == '=')
            value = name + nlen + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            fprintf(stderr, "%s: option '--%s' needs a value\n", prog, with_value[k]);
            return -EINVAL;
        }
        if (k == 0) {
            o->control = value;
        } else if (k == 1) {
            o->data_dir = value;
        } else if (k == 2) {
            o->config = value;
        } else {
            char *end;
            errno = 0;
            o->timeout_s = strtod(value, &end);
            if (errno != 0 || end == value || *end != '\0' || !(o->timeout_s >= 0) ||
                o->timeout_s > 86400 * 365) {
                fprintf(stderr, "%s: --timeout: '%.64s' is not a number of seconds\n", prog, value);
                return -EINVAL;
            }
        }
    }
    if (i >= argc) {
        fprintf(stderr, "%s: no command given\n", prog);
        return -EINVAL;
    }
    o->command = argv[i];
    return parse_command_words(o, argc, argv, i + 1);
}

/*
 * The socket path, found as p2psipd finds it: the configuration file over the
 * defaults, --data-dir and --control over the file, then data_dir/control.sock.
 */
static int socket_path(const struct options *o, char *out, size_t size, bool quiet)
{
    char err[CONF_ERR_MAX];
    struct conf c;

    conf_defaults(&c);
    if (o->config != NULL && conf_load_file(&c, o->config, err, sizeof(err)) != 0) {
        if (!quiet)
            fprintf(stderr, "%s: %s\n", prog, err);
        return -EINVAL;
    }
    if ((o->data_dir != NULL && conf_set(&c, "data_dir", o->data_dir, err, sizeof(err)) != 0) ||
        (o->control != NULL && conf_set(&c, "control", o->control, err, sizeof(err)) != 0)) {
        if (!quiet)
            fprintf(stderr, "%s: %s\n", prog, err);
        return -EINVAL;
    }
    if (c.control[0] == '\0' && c.data_dir[0] == '\0' &&
        conf_default_data_dir(c.data_dir, sizeof(c.data_dir), geteuid() == 0,
                              getenv("XDG_DATA_HOME"), getenv("HOME")) != 0) {
        if (!quiet)
            fprintf(stderr, "%s: no data directory: give --control or --data-dir\n", prog);
        return -ENOENT;
    }
    if (c.control[0] == '\0' && conf_default_control(c.control, sizeof(c.control), c.data_dir)) {
        if (!quiet)
            fprintf(stderr, "%s: %s/%s is too long for a socket path; give --control\n", prog,
                    c.data_dir, CONF_CONTROL_NAME);
        return -ENAMETOOLONG;
    }
    if (strlen(c.control) >= size ||
        strlen(c.control) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        if (!quiet)
            fprintf(stderr, "%s: %.64s...: too long for a socket path\n", prog, c.control);
        return -ENAMETOOLONG;
    }
    memcpy(out, c.control, strlen(c.control) + 1);
    return 0;
}

/* ---------------------------------------------------------------------------------
 * Talking to the daemon. */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline (ms, -1 = none).  1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int left = -1, n;
        if (deadline >= 0) {
            int64_t d = deadline - now_ms();
            left = d <= 0 ? 0 : (d > INT_MAX ? INT_MAX : (int)d);
        }
        n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        return n > 0 ? 1 : 0;
    }
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc <= 0)
                return rc == 0 ? -ETIMEDOUT : rc;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Reads the next line from fd into *line (a JSON object, new reference), keeping
 * what follows in b.  Returns 0, -ETIMEDOUT, -ECONNRESET (closed), -EBADMSG (not a
 * JSON object, or longer than the daemon ever sends), or another -errno.
 */
static int read_line(int fd, struct p2p_buf *b, int64_t deadline, json_t **line)
{
    for (;;) {
        char *nl = b->len > 0 ? memchr(b->data, '\n', b->len) : NULL;
        char chunk[65536];
        ssize_t n;
        int rc;

        if (nl != NULL) {
            size_t len = (size_t)(nl - b->data);
            json_t *j = json_loadb(b->data, len, 0, NULL);
            p2p_buf_consume(b, len + 1);
            if (!json_is_object(j)) {
                json_decref(j);
                return -EBADMSG;
            }
            *line = j;
            return 0;
        }
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc <= 0)
            return rc == 0 ? -ETIMEDOUT : rc;
        n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        if (p2p_buf_append(b, chunk, (size_t)n) != 0)
            return -EBADMSG;
    }
}

/* ---------------------------------------------------------------------------------
 * Readable output. */

/* A scalar (or, for a container, compact JSON) as text; the caller frees it. */
static char *scalar_text(const json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static bool is_table(const json_t *v)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return false;
    json_array_foreach(v, i, e)
    {
        if (!json_is_object(e))
            return false;
    }
    return true;
}

/* An array of objects: one column per key (first seen first), numbers right-aligned. */
static void print_table(FILE *f, const json_t *rows, int indent)
{
    const char *cols[TABLE_COLS_MAX];
    size_t width[TABLE_COLS_MAX], ncols = 0, nrows = json_array_size(rows);
    bool numeric[TABLE_COLS_MAX];
    char **cells;
    size_t i, c;
    json_t *row;

    json_array_foreach(rows, i, row)
    {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)row, key, v)
        {
            for (c = 0; c < ncols && strcmp(cols[c], key) != 0; c++)
                ;
            if (c == ncols && ncols < TABLE_COLS_MAX) {
                cols[ncols] = key;
                width[ncols] = strlen(key);
                numeric[ncols] = true;
                ncols++;
            }
        }
    }
    cells = calloc(nrows * ncols + 1, sizeof(*cells));
    if (cells == NULL)
        return;
    json_array_foreach(rows, i, row)
    {
        for (c = 0; c < ncols; c++) {
            json_t *v = json_object_get(row, cols[c]);
            char *t = v != NULL ? scalar_text(v) : strdup("-");
            cells[i * ncols + c] = t;
            if (t != NULL && strlen(t) > width[c])
                width[c] = strlen(t);
            if (v != NULL && !json_is_number(v))
                numeric[c] = false;
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        fprintf(f, "%*s", indent, "");
        for (c = 0; c < ncols; c++) {
            const char *t = r == 0 ? cols[c] : cells[(r - 1) * ncols + c];
            bool last = c + 1 == ncols;
            if (t == NULL)
                t = "?";
            if (numeric[c])
                fprintf(f, "%*s%s", (int)width[c], t, last ? "" : "  ");
            else if (last)
                fputs(t, f);
            else
                fprintf(f, "%-*s  ", (int)width[c], t);
        }
        fputc('\n', f);
    }
    for (i = 0; i < nrows * ncols; i++)
        free(cells[i]);
    free(cells);
}

/* The flattened "key: value" lines of an object, and its tables, collected first. */
struct kv {
    char *key;   /* a.b.c */
    char *value; /* NULL: a table follows (table) */
    const json_t *table;
};

struct kvs {
    struct kv *v;
    size_t n, alloc;
};

static void kvs_add(struct kvs *k, const char *prefix, const char *key, char *value,
                    const json_t *table)
{
    struct kv *e;
    size_t len = strlen(prefix) + strlen(key) + 1;

    if (k->n == k->alloc) {
        size_t alloc = k->alloc ? 2 * k->alloc : 32;
        struct kv *nv = realloc(k->v, alloc * sizeof(*nv));
        if (nv == NULL) {
            free(value);
            return;
        }
        k->v = nv;
        k->alloc = alloc;
    }
    e = &k->v[k->n++];
    e->key = malloc(len);
    if (e->key != NULL)
        snprintf(e->key, len, "%s%s", prefix, key);
    e->value = value;
    e->table = table;
}

/* A list of scalars on one line, "a, b, c"; NULL when it holds containers. */
static char *list_text(const json_t *a)
{
    struct p2p_buf b;
    size_t i;
    json_t *e;
    char *out;

    p2p_buf_init(&b, CONTROL_RESULT_MAX);
    json_array_foreach(a, i, e)
    {
        char *t;
        if (json_is_object(e) || json_is_array(e)) {
            p2p_buf_free(&b);
            return NULL;
        }
        t = scalar_text(e);
        if (t == NULL || (i > 0 && p2p_buf_append(&b, ", ", 2) != 0) ||
            p2p_buf_append(&b, t, strlen(t)) != 0) {
            free(t);
            p2p_buf_free(&b);
            return NULL;
        }
        free(t);
    }
    if (i == 0 && p2p_buf_append(&b, "(none)", 6) != 0) {
        p2p_buf_free(&b);
        return NULL;
    }
    out = malloc(b.len + 1);
    if (out != NULL) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    p2p_buf_free(&b);
    return out;
}

static void collect(struct kvs *k, const char *prefix, const json_t *obj)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        if (json_is_object(v) && json_object_size(v) > 0) {
            size_t len = strlen(prefix) + strlen(key) + 2;
            char *sub = malloc(len);
            if (sub == NULL)
                continue;
            snprintf(sub, len, "%s%s.", prefix, key);
            collect(k, sub, v);
            free(sub);
        } else if (is_table(v)) {
            kvs_add(k, prefix, key, NULL, v);
        } else if (json_is_array(v)) {
            char *t = list_text(v);
            kvs_add(k, prefix, key, t != NULL ? t : scalar_text(v), NULL);
        } else {
            kvs_add(k, prefix, key, scalar_text(v), NULL);
        }
    }
}

static void print_object(FILE *f, const json_t *obj)
{
    struct kvs k = {NULL, 0, 0};
    size_t width = 0;

    collect(&k, "", obj);
    for (size_t i = 0; i < k.n; i++) {
        size_t w = k.v[i].key != NULL ? strlen(k.v[i].key) + 1 : 0;
        if (k.v[i].table == NULL && w > width && w <= KEY_WIDTH_MAX)
            width = w;
    }
    /* Plain lines first, then the tables, each under its name. */
    for (size_t i = 0; i < k.n; i++) {
        if (k.v[i].table != NULL || k.v[i].key == NULL)
            continue;
        size_t klen = strlen(k.v[i].key) + 1;
        fprintf(f, "%s:%*s %s\n", k.v[i].key, (int)(width > klen ? width - klen : 0), "",
                k.v[i].value != NULL ? k.v[i].value : "?");
    }
    for (size_t i = 0; i < k.n; i++) {
        if (k.v[i].table == NULL || k.v[i].key == NULL)
            continue;
        fprintf(f, "%s:\n", k.v[i].key);
        print_table(f, k.v[i].table, 2);
    }
    for (size_t i = 0; i < k.n; i++) {
        free(k.v[i].key);
        free(k.v[i].value);
    }
    free(k.v);
}

static void print_result(FILE *f, const json_t *r)
{
    if (json_is_object(r)) {
        if (json_object_size(r) == 0)
            fputs("(empty)\n", f);
        else
            print_object(f, r);
    } else if (is_table(r)) {
        print_table(f, r, 0);
    } else if (json_is_array(r)) {
        size_t i;
        json_t *e;
        if (json_array_size(r) == 0)
            fputs("(none)\n", f);
        json_array_foreach(r, i, e)
        {
            char *t = scalar_text(e);
            fprintf(f, "%s\n", t != NULL ? t : "?");
            free(t);
        }
    } else if (json_is_string(r)) {
        /* Raw, as it is (a text such as "metrics" ends in its own newline). */
        size_t n = json_string_length(r);
        fwrite(json_string_value(r), 1, n, f);
        if (n == 0 || json_string_value(r)[n - 1] != '\n')
            fputc('\n', f);
    } else {
        char *t = scalar_text(r);
        fprintf(f, "%s\n", t != NULL ? t : "?");
        free(t);
    }
}

/* An event on one line: "HH:MM:SS name key=value ..." (values as compact JSON). */
static void print_event(FILE *f, const json_t *ev)
{
    const char *name = json_string_value(json_object_get(ev, "event"));
    time_t t = time(NULL);
    struct tm tm;
    char when[16] = "";
    const char *key;
    json_t *v;

    if (localtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
    fprintf(f, "%s %s", when, name != NULL ? name : "?");
    json_object_foreach((json_t *)ev, key, v)
    {
        char *s;
        if (strcmp(key, "event") == 0)
            continue;
        s = scalar_text(v);
        fprintf(f, " %s=%s", key, s != NULL ? s : "?");
        free(s);
    }
    fputc('\n', f);
}

/* ---------------------------------------------------------------------------------
 * main. */

int main(int argc, char **argv)
{
    struct options o = {.timeout_s = 10};
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct sockaddr_un sa;
    struct p2p_buf in;
    json_t *req = NULL, *line = NULL;
    bool help = false, watching, stopping = false;
    int64_t deadline;
    char *text = NULL;
    int fd = -1, rc, status = EXIT_CONNECT;

    o.args = json_array();
    o.opts = json_object();
    p2p_buf_init(&in, CONTROL_RESULT_MAX + 1);
    if (o.args == NULL || o.opts == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EXIT_CONNECT;
    }
    rc = parse_args(&o, argc, argv, &help);
    if (rc != 0 || help) {
        if (help || rc < 0) {
            bool ok = socket_path(&o, path, sizeof(path), true) == 0;
            if (help)
                usage(stdout, ok ? path : NULL);
            else
                fprintf(stderr, "Try '%s --help'.\n", prog);
        }
        status = rc < 0 ? EXIT_USAGE : EXIT_OK;
        goto out;
    }
    if (socket_path(&o, path, sizeof(path), false) != 0) {
        status = EXIT_USAGE;
        goto out;
    }
    watching = strcmp(o.command, "watch") == 0;

    /* One request line; the daemon would refuse a longer one, so say it here. */
    req = json_pack("{s:i, s:s, s:O, s:O}", "id", 1, "cmd", o.command, "args", o.args, "opts",
                    o.opts);
    text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    if (text == NULL) {
        fprintf(stderr, "%s: command '%.64s' is not valid UTF-8\n", prog, o.command);
        status = EXIT_USAGE;
        goto out;
    }
    if (strlen(text) > CONTROL_LINE_MAX) {
        fprintf(stderr, "%s: request too long (%zu bytes, max %d)\n", prog, strlen(text),
                CONTROL_LINE_MAX);
        status = EXIT_USAGE;
        goto out;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "%s: cannot connect to %s: %s%s\n", prog, path, strerror(errno),
                errno == ENOENT || errno == ECONNREFUSED ? " (is p2psipd running?)" : "");
        goto out;
    }
    deadline = o.timeout_s > 0 ? now_ms() + (int64_t)(o.timeout_s * 1000) : -1;
    {
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps left room: its NUL */
        rc = send_all(fd, text, len + 1, deadline);
        text[len] = '\0';
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(-rc));
        goto out;
    }

    /* The answer: the first line with our id (event lines may come first). */
    for (;;) {
        rc = read_line(fd, &in, deadline, &line);
        if (rc != 0)
            break;
        if (json_object_get(line, "ok") != NULL &&
            json_integer_value(json_object_get(line, "id")) == 1)
            break;
        json_decref(line);
        line = NULL;
    }
    if (rc != 0) {
        if (rc == -ETIMEDOUT)
            fprintf(stderr, "%s: %s: no answer within %g s\n", prog, path, o.timeout_s);
        else if (rc == -ECONNRESET)
            fprintf(stderr, "%s: %s: the daemon closed the connection without answering\n", prog,
                    path);
        else if (rc == -EBADMSG)
            fprintf(stderr, "%s: %s: the answer is not a JSON object\n", prog, path);
        else
            fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(-rc));
        goto out;
    }
    if (!json_is_true(json_object_get(line, "ok"))) {
        const char *e = json_string_value(json_object_get(line, "error"));
        fprintf(stderr, "%s: %s: %s\n", prog, o.command, e != NULL ? e : "failed");
        status = EXIT_ERROR;
        goto out;
    }
    if (!watching) {
        json_t *r = json_object_get(line, "result");
        if (o.json) {
            char *s = json_dumps(r != NULL ? r : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
            if (s != NULL)
                printf("%s\n", s);
            free(s);
        } else {
            print_result(stdout, r != NULL ? r : json_null());
        }
        status = fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
        goto out;
    }

    /* watch: every event line until the daemon goes (or we are interrupted). */
    for (;;) {
        const char *name;
        json_decref(line);
        line = NULL;
        rc = read_line(fd, &in, -1, &line);
        if (rc != 0)
            break;
        name = json_string_value(json_object_get(line, "event"));
        if (name == NULL)
            continue; /* an answer, not an event */
        if (o.json) {
            char *s = json_dumps(line, JSON_COMPACT);
            if (s != NULL)
                printf("%s\n", s);
            free(s);
        } else {
            print_event(stdout, line);
        }
        fflush(stdout);
        stopping = stopping || strcmp(name, "stopping") == 0;
    }
    if (stopping && rc == -ECONNRESET) {
        status = EXIT_OK;
    } else {
        fprintf(stderr, "%s: %s: %s\n", prog, path,
                rc == -ECONNRESET ? "the daemon closed the connection" : strerror(-rc));
    }
out:
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(line);
    json_decref(req);
    json_decref(o.args);
    json_decref(o.opts);
    p2p_buf_free(&in);
    return status;
}
