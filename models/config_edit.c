/* Derived configs by splicing the source text: the value's position comes
 * from libyaml's marks, so everything around it (comments, key order,
 * layout) survives, and the result reads like the file it came from. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "models/config_edit.h"
#include "models/config_internal.h"

#define MAX_PATH_KEYS 8
#define MAX_KEY 128

typedef struct target {
    const char *name;
    char keys[MAX_PATH_KEYS][MAX_KEY];
    int n_keys;
    /* the mapping that should hold the last key */
    int map_found, map_flow, map_empty;
    yaml_mark_t map_start, first_key;
    char first_key_text[MAX_KEY];
    /* the value, when the key is there */
    int value_found, value_is_scalar, value_plain;
    yaml_mark_t key_start, value_start, value_end;
    char value_text[MAX_KEY];
} target;

static int next_event(yaml_parser_t *p, yaml_event_t *ev, const target *t)
{
    if (!yaml_parser_parse(p, ev))
        return fg_error("%s:%d:%d: YAML error: %s", t->name, (int)p->problem_mark.line + 1,
                        (int)p->problem_mark.column + 1,
                        p->problem ? p->problem : "unreadable");
    return FG_OK;
}

static void copy_scalar(char *dst, const yaml_event_t *ev)
{
    size_t n = ev->data.scalar.length < MAX_KEY - 1 ? ev->data.scalar.length : MAX_KEY - 1;
    memcpy(dst, ev->data.scalar.value, n);
    dst[n] = '\0';
}

/* Visits the node that starts with *ev (consumed here). `match` says the
 * keys leading to it are the first `depth` keys of the path. Depth is
 * bounded because the text was validated as a config first. */
static int visit(yaml_parser_t *p, yaml_event_t *ev, int depth, int match, target *t)
{
    int rc = FG_OK;
    if (ev->type == YAML_SEQUENCE_START_EVENT) {
        yaml_event_delete(ev);
        for (;;) {
            yaml_event_t kid;
            if (next_event(p, &kid, t) != FG_OK)
                return FG_ERR;
            if (kid.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&kid);
                return FG_OK;
            }
            if (visit(p, &kid, depth + 1, 0, t) != FG_OK)
                return FG_ERR;
        }
    }
    if (ev->type != YAML_MAPPING_START_EVENT) {
        yaml_event_delete(ev);
        return FG_OK;
    }
    int holds_last = match && depth == t->n_keys - 1;
    if (holds_last) {
        t->map_found = 1;
        t->map_flow = ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
        t->map_start = ev->start_mark;
        t->map_empty = 1;
    }
    yaml_event_delete(ev);
    for (int first = 1;; first = 0) {
        yaml_event_t key, value;
        if (next_event(p, &key, t) != FG_OK)
            return FG_ERR;
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return FG_OK;
        }
        int key_match = 0;
        yaml_mark_t key_start = key.start_mark;
        if (key.type == YAML_SCALAR_EVENT) {
            key_match = match && depth < t->n_keys &&
                        key.data.scalar.length == strlen(t->keys[depth]) &&
                        !memcmp(key.data.scalar.value, t->keys[depth], key.data.scalar.length);
            if (holds_last && first) {
                t->map_empty = 0;
                t->first_key = key.start_mark;
                copy_scalar(t->first_key_text, &key);
            }
        }
        yaml_event_delete(&key);
        if (next_event(p, &value, t) != FG_OK)
            return FG_ERR;
        if (holds_last && key_match) {
            t->value_found = 1;
            t->key_start = key_start;
            t->value_is_scalar = value.type == YAML_SCALAR_EVENT;
            t->value_start = value.start_mark;
            t->value_end = value.end_mark;
            if (t->value_is_scalar) {
                t->value_plain = value.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                copy_scalar(t->value_text, &value);
            }
        }
        rc = visit(p, &value, depth + 1, key_match, t);
        if (rc != FG_OK)
            return rc;
    }
}

/* libyaml marks count characters; this finds the byte they point at.
 * Line breaks are \n, \r\n or \r, as the YAML reader counts them. */
static size_t byte_offset(const char *s, size_t len, yaml_mark_t m)
{
    size_t i = 0;
    for (size_t line = 0; line < m.line && i < len; i++) {
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
            i++;
        if (s[i] == '\n' || s[i] == '\r')
            line++;
    }
    for (size_t col = 0; col < m.column && i < len; col++) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;   /* UTF-8 continuation bytes belong to the same character */
    }
    return i;
}

static int plain_word(const char *v)
{
    if (!*v)
        return 0;
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
              (*v >= '0' && *v <= '9') || strchr("_.+-", *v)))
            return 0;
    return 1;
}

static int parse_assignment(const char *a, const char *name, target *t, const char **value)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    const char *eq;
    if (a[0] == '-') {
        *value = NULL;
        eq = a + strlen(a);
        a++;
    } else if ((eq = strchr(a, '=')) && eq != a) {
        *value = eq + 1;
    } else {
        return fg_error("%s: edit '%s': expected PATH=VALUE (e.g. model.coupling=affine) or "
                        "-PATH", name, a);
    }
    if (*value && !plain_word(*value))
        return fg_error("%s: edit '%s': expected a plain value (letters, digits, '_', '.', "
                        "'+', '-')", name, a);
    const char *s = a;
    while (s < eq) {
        const char *dot = memchr(s, '.', (size_t)(eq - s));
        size_t n = (size_t)((dot ? dot : eq) - s);
        if (n == 0 || n >= MAX_KEY || t->n_keys == MAX_PATH_KEYS)
            return fg_error("%s: edit '%s': expected a path of at most %d non-empty keys "
                            "joined by '.'", name, a, MAX_PATH_KEYS);
        memcpy(t->keys[t->n_keys], s, n);
        t->keys[t->n_keys++][n] = '\0';
        s = dot ? dot + 1 : eq;
    }
    return FG_OK;
}

static int find(const char *text, size_t len, target *t)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return fg_error("%s: cannot start the YAML reader", t->name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = FG_OK;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(&p, &ev, t)) != FG_OK)
            break;
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
            ev.type == YAML_SCALAR_EVENT) {
            if ((rc = visit(&p, &ev, 0, 1, t)) != FG_OK)
                break;
        } else {
            yaml_event_delete(&ev);
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

/* One assignment: *text (malloc'ed, *len bytes) is replaced by the result. */
static int apply(char **text, size_t *len, const char *name, const char *a)
{
    target t;
    const char *value = "";
    if (parse_assignment(a, name, &t, &value) != FG_OK || find(*text, *len, &t) != FG_OK)
        return FG_ERR;
    char insert[2 * MAX_KEY + 256];
    size_t at, cut;
    if (!value) {
        if (!t.value_found)
            return FG_OK;   /* nothing to remove */
        if (t.map_flow || !t.value_is_scalar || t.value_end.line != t.key_start.line)
            return fg_error("%s:%d:%d: edit '%s': only a one-line 'key: value' entry of a "
                            "block mapping can be removed", name, (int)t.key_start.line + 1,
                            (int)t.key_start.column + 1, a);
        /* The whole line goes, comment included: the key starts it. */
        at = byte_offset(*text, *len, t.key_start) - t.key_start.column;
        size_t end = byte_offset(*text, *len, t.value_end);
        while (end < *len && (*text)[end] != '\n')
            end++;
        cut = (end < *len ? end + 1 : end) - at;
        insert[0] = '\0';
    } else if (t.value_found) {
        if (!t.value_is_scalar)
            return fg_error("%s:%d:%d: edit '%s': the value there is a mapping or a list; "
                            "expected a single value", name, (int)t.value_start.line + 1,
                            (int)t.value_start.column + 1, a);
        at = byte_offset(*text, *len, t.value_start);
        cut = byte_offset(*text, *len, t.value_end) - at;
        /* A plain scalar's bytes are its text: a cheap check that the marks
         * were turned into the right offsets. */
        if (t.value_plain && (cut != strlen(t.value_text) ||
                              memcmp(*text + at, t.value_text, cut) != 0))
            return fg_error("%s:%d:%d: edit '%s': cannot locate the value in the text",
                            name, (int)t.value_start.line + 1,
                            (int)t.value_start.column + 1, a);
        snprintf(insert, sizeof insert, "%s", value);
    } else if (!t.map_found) {
        return fg_error("%s: edit '%s': the config has no mapping on that path to hold "
                        "the key '%s'", name, a, t.keys[t.n_keys - 1]);
    } else if (t.map_empty) {
        /* Only a flow mapping can be empty: write inside its braces. */
        at = byte_offset(*text, *len, t.map_start) + 1;
        cut = 0;
        snprintf(insert, sizeof insert, "%s: %s", t.keys[t.n_keys - 1], value);
    } else {
        at = byte_offset(*text, *len, t.first_key);
        cut = 0;
        size_t kl = strlen(t.first_key_text);
        if (at + kl > *len || memcmp(*text + at, t.first_key_text, kl) != 0)
            return fg_error("%s:%d:%d: edit '%s': cannot locate the mapping in the text",
                            name, (int)t.first_key.line + 1, (int)t.first_key.column + 1, a);
        if (t.map_flow)
            snprintf(insert, sizeof insert, "%s: %s, ", t.keys[t.n_keys - 1], value);
        else
            snprintf(insert, sizeof insert, "%s: %s\n%*s", t.keys[t.n_keys - 1], value,
                     (int)t.first_key.column, "");
    }
    size_t il = strlen(insert), nl = *len - cut + il;
    char *out = fg_xmalloc(nl + 1, "edited config");
    memcpy(out, *text, at);
    memcpy(out + at, insert, il);
    memcpy(out + at + il, *text + at + cut, *len - at - cut);
    out[nl] = '\0';
    free(*text);
    *text = out;
    *len = nl;
    return FG_OK;
}

int fg_config_edit(const char *text, size_t len, const char *name,
                   const char *const *assignments, int n, char **out)
{
    *out = NULL;
    if (!name)
        name = "<config>";
    fg_config *cfg;
    if (fg_config_load_string(text, len, name, &cfg) != FG_OK)
        return FG_ERR;
    fg_config_free(cfg);
    char *cur = fg_xmalloc(len + 1, "edited config");
    memcpy(cur, text, len);
    cur[len] = '\0';
    size_t cur_len = len;
    for (int i = 0; i < n; i++) {
        if (apply(&cur, &cur_len, name, assignments[i]) != FG_OK) {
            free(cur);
            return FG_ERR;
        }
    }
    char edited[512];
    snprintf(edited, sizeof edited, "%s (edited)", name);
    if (fg_config_load_string(cur, cur_len, edited, &cfg) != FG_OK) {
        free(cur);
        return FG_ERR;
    }
    fg_config_free(cfg);
    *out = cur;
    return FG_OK;
}
