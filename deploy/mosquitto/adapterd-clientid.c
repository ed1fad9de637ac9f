/*
 * A mosquitto 2.x plugin that ties client ids to users. mosquitto hands a client id to whoever connects with it
 * next, whatever their login ("Client adapterd-w1 already connected, closing old connection."), and neither the ACL
 * file, clientid_prefixes (one prefix for all clients), use_username_as_clientid (one id per user, but the workers
 * of a pool share user adapterd) nor the dynamic-security plugin (binds a user to one exact id; it does not keep
 * other users off that id) stops a sensor from taking a worker's id and knocking the worker off.
 *
 * At login (before the password file is checked, before any session is taken over) this plugin refuses:
 *   - a client id starting with a reserved prefix unless the login is one of the prefix's users
 *     (plugin_opt_prefix PREFIX USER[,USER...], one line per prefix);
 *   - a client id holding '/', '+' or '#': the ACL's %c patterns take the client id as one topic level, and a
 *     client called "VICTIM/replies" would otherwise read adapterd/v1/clients/VICTIM/replies.
 * Everything else it leaves to the password file (it answers "defer").
 *
 *   cc -shared -fPIC -O2 -o adapterd-clientid.so adapterd-clientid.c      (deploy/mosquitto/make-users does this)
 *   plugin /etc/mosquitto/adapterd-clientid.so
 *   plugin_opt_prefix adapterd- adapterd
 *
 * Self-contained: the few declarations below are mosquitto 2.0's plugin interface (mosquitto_broker.h,
 * mosquitto_plugin.h, plugin version 5), so no mosquitto-dev package is needed to build it.
 */
#include <stdlib.h>
#include <string.h>

struct mosquitto;
typedef struct mosquitto_plugin_id_t mosquitto_plugin_id_t;
struct mosquitto_opt { char *key; char *value; };
struct mosquitto_evt_basic_auth { void *future; struct mosquitto *client; char *username; char *password; void *future2[4]; };
typedef int (*MOSQ_FUNC_generic_callback)(int, void *, void *);

enum { MOSQ_ERR_SUCCESS = 0, MOSQ_ERR_NOMEM = 1, MOSQ_ERR_INVAL = 3, MOSQ_ERR_AUTH = 11, MOSQ_ERR_PLUGIN_DEFER = 17 };
enum { MOSQ_EVT_BASIC_AUTH = 3 };
enum { MOSQ_LOG_NOTICE = 1 << 1, MOSQ_LOG_ERR = 1 << 3 };

int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event, MOSQ_FUNC_generic_callback cb_func,
                                const void *event_data, void *userdata);
int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event, MOSQ_FUNC_generic_callback cb_func,
                                  const void *event_data);
const char *mosquitto_client_id(const struct mosquitto *client);
void mosquitto_log_printf(int level, const char *fmt, ...);

struct reservation {
    char *prefix;
    char *users; /* ",user1,user2," so a user matches as ",user," */
};

static mosquitto_plugin_id_t *plugin_id;
static struct reservation *reservations;
static int reservation_count;

static int user_listed(const char *users, const char *user) {
    if (user == NULL || user[0] == '\0' || strchr(user, ',')) return 0;
    size_t length = strlen(user);
    for (const char *at = strstr(users, user); at; at = strstr(at + 1, user)) {
        if (at[-1] == ',' && at[length] == ',') return 1;
    }
    return 0;
}

static int basic_auth(int event, void *event_data, void *userdata) {
    (void)event;
    (void)userdata;
    struct mosquitto_evt_basic_auth *auth = event_data;
    const char *id = mosquitto_client_id(auth->client);
    const char *user = auth->username ? auth->username : "";
    if (id == NULL) return MOSQ_ERR_PLUGIN_DEFER;
    if (strpbrk(id, "/+#")) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "adapterd-clientid: refused client id \"%s\" (user \"%s\"): '/', '+' and '#' are not allowed in client ids", id, user);
        return MOSQ_ERR_AUTH;
    }
    for (int i = 0; i < reservation_count; i++) {
        if (strncmp(id, reservations[i].prefix, strlen(reservations[i].prefix)) == 0 && !user_listed(reservations[i].users, user)) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE, "adapterd-clientid: refused client id \"%s\" for user \"%s\": ids starting with \"%s\" are reserved", id, user, reservations[i].prefix);
            return MOSQ_ERR_AUTH;
        }
    }
    return MOSQ_ERR_PLUGIN_DEFER;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
    for (int i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5) return 5;
    }
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    plugin_id = identifier;
    reservations = calloc(option_count > 0 ? (size_t)option_count : 1, sizeof *reservations);
    if (!reservations) return MOSQ_ERR_NOMEM;
    for (int i = 0; i < option_count; i++) {
        if (strcmp(options[i].key, "prefix") != 0) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "adapterd-clientid: unknown option plugin_opt_%s", options[i].key);
            return MOSQ_ERR_INVAL;
        }
        const char *value = options[i].value;
        const char *space = strpbrk(value, " \t");
        const char *users = space ? space + strspn(space, " \t") : NULL;
        if (!space || space == value || !users || !users[0]) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "adapterd-clientid: plugin_opt_prefix wants \"PREFIX USER[,USER...]\", not \"%s\"", value);
            return MOSQ_ERR_INVAL;
        }
        struct reservation *reservation = &reservations[reservation_count++];
        reservation->prefix = strndup(value, (size_t)(space - value));
        size_t length = strcspn(users, " \t");
        reservation->users = malloc(length + 3);
        if (!reservation->prefix || !reservation->users) return MOSQ_ERR_NOMEM;
        reservation->users[0] = ',';
        memcpy(reservation->users + 1, users, length);
        reservation->users[length + 1] = ',';
        reservation->users[length + 2] = '\0';
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "adapterd-clientid: client ids starting with \"%s\" only for user(s) %s", reservation->prefix, users);
    }
    return mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    (void)options;
    (void)option_count;
    for (int i = 0; i < reservation_count; i++) {
        free(reservations[i].prefix);
        free(reservations[i].users);
    }
    free(reservations);
    reservations = NULL;
    reservation_count = 0;
    return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, basic_auth, NULL);
}
