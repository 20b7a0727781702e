/* YAML text -> a small tree of scalars, mappings and sequences, each with
 * its 1-based line and column.
 *
 * libyaml's event API is used rather than its document loader because the
 * loader expands aliases and accepts anything; here every bound is checked
 * as the events arrive, so a hostile file costs at most its own size. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "models/config_internal.h"

typedef struct builder {
    const cfg_ctx *ctx;
    cfg_node *root;
    cfg_node *stack[FG_CONFIG_MAX_DEPTH];
    int depth;
    int nodes;
    int documents;
} builder;

static cfg_node *node_new(cfg_kind kind, yaml_mark_t mark)
{
    cfg_node *n = fg_xcalloc(1, sizeof *n, "config node");
    n->kind = kind;
    n->line = (int)mark.line + 1;
    n->column = (int)mark.column + 1;
    return n;
}

void cfg_node_free(cfg_node *n)
{
    if (!n)
        return;
    /* Depth is capped at FG_CONFIG_MAX_DEPTH, so recursion is bounded. */
    for (int i = 0; i < n->n; i++)
        cfg_node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static void add_kid(cfg_node *parent, cfg_node *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? 2 * parent->cap : 8;
        parent->kids = fg_xrealloc(parent->kids, (size_t)parent->cap * sizeof *parent->kids,
                                   "config node children");
    }
    parent->kids[parent->n++] = kid;
}

static int at_mark(const builder *b, yaml_mark_t mark, const char *msg)
{
    return fg_error("%s:%d:%d: %s", b->ctx->name, (int)mark.line + 1,
                    (int)mark.column + 1, msg);
}

/* Anchors only exist to be aliased, and aliases are how a few bytes of YAML
 * become gigabytes ("billion laughs"); tags would change what a scalar
 * means behind the schema's back. Refuse all three. */
static int refuse_decorations(const builder *b, yaml_mark_t mark,
                              const yaml_char_t *anchor, const yaml_char_t *tag)
{
    char msg[FG_CONFIG_MAX_SCALAR / 8];
    if (anchor) {
        snprintf(msg, sizeof msg, "anchor '&%.60s' is not supported (anchors and "
                 "aliases are refused; write the value out)", (const char *)anchor);
        return at_mark(b, mark, msg);
    }
    if (tag) {
        snprintf(msg, sizeof msg, "tag '%.60s' is not supported (expected a plain "
                 "value without a '!' tag)", (const char *)tag);
        return at_mark(b, mark, msg);
    }
    return FG_OK;
}

/* Place a new node under the open collection (or as the root). A mapping
 * slot at an even index is a key: it must be a scalar, and not repeat an
 * earlier key. */
static int attach(builder *b, cfg_node *n)
{
    if (++b->nodes > FG_CONFIG_MAX_NODES) {
        cfg_node_free(n);
        return fg_error("%s:%d:%d: more than %d YAML nodes (a model config is far "
                        "smaller)", b->ctx->name, n->line, n->column, FG_CONFIG_MAX_NODES);
    }
    if (b->depth == 0) {
        b->root = n;
        return FG_OK;
    }
    cfg_node *parent = b->stack[b->depth - 1];
    if (parent->kind == CFG_MAP && parent->n % 2 == 0) {
        int line = n->line, column = n->column;
        if (n->kind != CFG_SCALAR) {
            cfg_node_free(n);
            return fg_error("%s:%d:%d: mapping keys must be plain words (expected "
                            "'key: value')", b->ctx->name, line, column);
        }
        if (parent->n / 2 >= FG_CONFIG_MAX_KEYS) {
            cfg_node_free(n);
            return fg_error("%s:%d:%d: more than %d keys in one mapping", b->ctx->name,
                            line, column, FG_CONFIG_MAX_KEYS);
        }
        for (int i = 0; i < parent->n; i += 2) {
            const cfg_node *k = parent->kids[i];
            if (k->len == n->len && memcmp(k->text, n->text, n->len) == 0) {
                fg_error("%s:%d:%d: duplicate key '%.80s' (first given at line %d, "
                         "column %d; expected each key once)", b->ctx->name, line,
                         column, n->text, k->line, k->column);
                cfg_node_free(n);
                return FG_ERR;
            }
        }
    }
    add_kid(parent, n);
    return FG_OK;
}

static int on_scalar(builder *b, const yaml_event_t *ev)
{
    if (refuse_decorations(b, ev->start_mark, ev->data.scalar.anchor,
                           ev->data.scalar.tag))
        return FG_ERR;
    if (ev->data.scalar.length > FG_CONFIG_MAX_SCALAR) {
        char msg[128];
        snprintf(msg, sizeof msg, "value longer than %d bytes (%zu given)",
                 FG_CONFIG_MAX_SCALAR, (size_t)ev->data.scalar.length);
        return at_mark(b, ev->start_mark, msg);
    }
    cfg_node *n = node_new(CFG_SCALAR, ev->start_mark);
    n->len = ev->data.scalar.length;
    n->text = fg_xmalloc(n->len + 1, "config scalar");
    memcpy(n->text, ev->data.scalar.value, n->len);
    n->text[n->len] = '\0';
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    return attach(b, n);
}

static int on_open(builder *b, const yaml_event_t *ev, cfg_kind kind)
{
    const yaml_char_t *anchor = kind == CFG_MAP ? ev->data.mapping_start.anchor
                                                : ev->data.sequence_start.anchor;
    const yaml_char_t *tag = kind == CFG_MAP ? ev->data.mapping_start.tag
                                             : ev->data.sequence_start.tag;
    if (refuse_decorations(b, ev->start_mark, anchor, tag))
        return FG_ERR;
    if (b->depth >= FG_CONFIG_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels", FG_CONFIG_MAX_DEPTH);
        return at_mark(b, ev->start_mark, msg);
    }
    cfg_node *n = node_new(kind, ev->start_mark);
    if (attach(b, n))
        return FG_ERR;
    b->stack[b->depth++] = n;
    return FG_OK;
}

static int on_document_start(builder *b, const yaml_event_t *ev)
{
    if (b->documents++ > 0)
        return at_mark(b, ev->start_mark, "a second YAML document (expected exactly "
                       "one document; remove the '---' separator)");
    return FG_OK;
}

/* Reader errors (bad UTF-8, control bytes) carry a byte offset, not a mark:
 * turn it into a line and a column counted in characters, as marks are. */
static void offset_to_mark(const char *text, size_t len, size_t offset, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            ++*line;
            *column = 1;
        } else if ((c & 0xC0) != 0x80) {
            ++*column;
        }
    }
}

static int libyaml_error(const builder *b, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown error";
    int line, column;
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return fg_error("%s: out of memory while parsing YAML", b->ctx->name);
    case YAML_READER_ERROR:
        offset_to_mark(text, len, p->problem_offset, &line, &column);
        if (p->problem_value >= 0)
            return fg_error("%s:%d:%d: invalid input: %s (byte 0x%02X; expected %s)",
                            b->ctx->name, line, column, problem,
                            (unsigned)p->problem_value & 0xFFu,
                            strstr(problem, "control") ? "text without control characters"
                                                       : "valid UTF-8 text");
        return fg_error("%s:%d:%d: invalid input: %s (expected UTF-8 text)",
                        b->ctx->name, line, column, problem);
    default:
        line = (int)p->problem_mark.line + 1;
        column = (int)p->problem_mark.column + 1;
        if (p->context)
            return fg_error("%s:%d:%d: YAML syntax error: %s (%s that starts at "
                            "line %d, column %d)", b->ctx->name, line, column, problem,
                            p->context, (int)p->context_mark.line + 1,
                            (int)p->context_mark.column + 1);
        return fg_error("%s:%d:%d: YAML syntax error: %s", b->ctx->name, line,
                        column, problem);
    }
}

int cfg_parse(const cfg_ctx *ctx, const char *text, size_t len, cfg_node **root)
{
    *root = NULL;
    if (len > FG_CONFIG_MAX_BYTES)
        return fg_error("%s:1:1: config is %zu bytes, more than the %d allowed",
                        ctx->name, len, FG_CONFIG_MAX_BYTES);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return fg_error("%s: out of memory while parsing YAML", ctx->name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    /* A UTF-16 BOM would otherwise switch encodings; configs are UTF-8. */
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);

    builder b = { .ctx = ctx };
    int rc = FG_OK, done = 0;
    while (!done && rc == FG_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = libyaml_error(&b, &p, text, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_DOCUMENT_START_EVENT: rc = on_document_start(&b, &ev); break;
        case YAML_SCALAR_EVENT: rc = on_scalar(&b, &ev); break;
        case YAML_SEQUENCE_START_EVENT: rc = on_open(&b, &ev, CFG_SEQ); break;
        case YAML_MAPPING_START_EVENT: rc = on_open(&b, &ev, CFG_MAP); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: b.depth--; break;
        case YAML_ALIAS_EVENT:
            rc = at_mark(&b, ev.start_mark, "alias is not supported (anchors and "
                         "aliases are refused; write the value out)");
            break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc == FG_OK && !b.root)
        rc = fg_error("%s:1:1: empty config (expected a mapping with a 'model' key)",
                      ctx->name);
    if (rc != FG_OK) {
        cfg_node_free(b.root);
        return FG_ERR;
    }
    *root = b.root;
    return FG_OK;
}
