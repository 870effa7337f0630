/* test_protocol.c: the protocol's tables (common/protocol.c) against
 * schema/frames/, so the code and the documented schema cannot drift:
 * every frame type on both sides, every field with its JSON types,
 * required-ness, length bounds, peerId pattern and extension marking, and
 * the error codes an error frame may carry. Run from the repository root
 * (tests/run.sh does), or set RTM_ROOT. */
#include "protocol.h"
#include "testlib.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>

static const char *root(void)
{
    const char *r = getenv("RTM_ROOT");
    return r && *r ? r : ".";
}

static json_t *load_schema(int server, const char *type)
{
    char path[512];
    snprintf(path, sizeof path, "%s/schema/frames/%s.%s.json", root(), server ? "server" : "client", type);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j) fprintf(stderr, "  cannot read %s: %s\n", path, e.text);
    return j;
}

static unsigned schema_types(json_t *prop)
{
    json_t *t = json_object_get(prop, "type");
    json_t *c = json_object_get(prop, "const");
    if (c) return json_is_boolean(c) ? RTM_J_BOOLEAN : json_is_string(c) ? RTM_J_STRING : 1u << 30;
    if (json_object_get(prop, "enum")) return RTM_J_STRING; /* of strings */
    if (!t) return 0;
    unsigned bits = 0;
    json_t *one = t;
    size_t n = json_is_array(t) ? json_array_size(t) : 1;
    for (size_t i = 0; i < n; i++) {
        if (json_is_array(t)) one = json_array_get(t, i);
        const char *s = json_string_value(one);
        if (!s) continue;
        if (!strcmp(s, "string")) bits |= RTM_J_STRING;
        else if (!strcmp(s, "integer")) bits |= RTM_J_INTEGER;
        else if (!strcmp(s, "boolean")) bits |= RTM_J_BOOLEAN;
        else if (!strcmp(s, "object")) bits |= RTM_J_OBJECT;
        else if (!strcmp(s, "array")) bits |= RTM_J_ARRAY;
        else if (!strcmp(s, "null")) bits |= RTM_J_NULL;
        else bits |= 1u << 30; /* a type the table cannot express */
    }
    return bits;
}

static int in_required(json_t *schema, const char *name)
{
    json_t *req = json_object_get(schema, "required");
    for (size_t i = 0; i < json_array_size(req); i++)
        if (!strcmp(json_string_value(json_array_get(req, i)), name)) return 1;
    return 0;
}

/* A frame's title says "<type> (extensions): ..."; a field's description
 * starts with "extensions" or names the "(extensions)" frame it belongs to. */
static int says_extension(json_t *obj, const char *key)
{
    const char *d = json_string_value(json_object_get(obj, key));
    if (!d) return 0;
    if (!strcmp(key, "title")) return strstr(d, "(extensions)") != NULL;
    return strncmp(d, "extensions", 10) == 0 || strstr(d, "(extensions)") != NULL;
}

static void check_frame(const struct rtm_frame_def *f)
{
    json_t *sc = load_schema(f->server, f->type);
    CHECK(sc != NULL);
    if (!sc) return;
    const char *side = f->server ? "server" : "client";
    json_t *props = json_object_get(sc, "properties");
    CHECK_STR(json_string_value(json_object_get(json_object_get(props, "type"), "const")), f->type);
    /* server frames are closed (additionalProperties false), client frames open */
    CHECK(json_is_false(json_object_get(sc, "additionalProperties")) == (f->server != 0));
    if (says_extension(sc, "title") != (int)f->ext)
        fprintf(stderr, "  %s.%s: extension marking differs\n", side, f->type);
    CHECK(says_extension(sc, "title") == (int)f->ext);
    CHECK(!strcmp(f->fields[0].name, "type"));
    CHECK(json_object_size(props) == f->n_fields);
    if (json_object_size(props) != f->n_fields)
        fprintf(stderr, "  %s.%s: schema has %zu fields, table %u\n", side, f->type, json_object_size(props),
                f->n_fields);
    for (unsigned i = 0; i < f->n_fields; i++) {
        const struct rtm_field *fd = &f->fields[i];
        json_t *p = json_object_get(props, fd->name);
        if (!p) {
            fprintf(stderr, "  %s.%s: field %s is not in the schema\n", side, f->type, fd->name);
            CHECK(0);
            continue;
        }
        int ok = 1;
        ok &= schema_types(p) == fd->types;
        ok &= in_required(sc, fd->name) == (int)fd->required;
        json_int_t maxl = json_integer_value(json_object_get(p, "maxLength"));
        json_int_t minl = json_integer_value(json_object_get(p, "minLength"));
        ok &= (unsigned)maxl == fd->max_len && (unsigned)minl == fd->min_len;
        const char *pat = json_string_value(json_object_get(p, "pattern"));
        ok &= (pat && !strcmp(pat, "^[!-~]+$")) == (fd->charset == RTM_CS_PEER_ID);
        ok &= says_extension(p, "description") == (int)fd->ext;
        if (!ok) fprintf(stderr, "  %s.%s: field %s differs from its schema\n", side, f->type, fd->name);
        CHECK(ok);
    }
    json_decref(sc);
}

TEST(every_table_frame_matches_its_schema)
{
    CHECK(rtm_n_frames > 0);
    for (unsigned i = 0; i < rtm_n_frames; i++) check_frame(&rtm_frames[i]);
}

TEST(every_schema_file_has_a_table_entry)
{
    char path[512];
    snprintf(path, sizeof path, "%s/schema/frames", root());
    DIR *d = opendir(path);
    CHECK(d != NULL);
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char side[16], type[128];
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json")) continue;
        if (sscanf(e->d_name, "%15[^.].%127[^.].json", side, type) != 2) {
            fprintf(stderr, "  unexpected schema file %s\n", e->d_name);
            CHECK(0);
            continue;
        }
        const struct rtm_frame_def *f = rtm_frame_find(!strcmp(side, "server"), type);
        if (!f) fprintf(stderr, "  %s has no entry in rtm_frames\n", e->d_name);
        CHECK(f != NULL);
        n++;
    }
    closedir(d);
    CHECK(n == (int)rtm_n_frames);
}

TEST(error_frame_codes_are_the_tables)
{
    json_t *sc = load_schema(1, "error");
    CHECK(sc != NULL);
    if (!sc) return;
    json_t *en = json_object_get(json_object_get(json_object_get(sc, "properties"), "code"), "enum");
    CHECK(json_array_size(en) > 0);
    /* every listed code is a frame error of the table ... */
    for (size_t i = 0; i < json_array_size(en); i++) {
        const char *code = json_string_value(json_array_get(en, i));
        int id = rtm_wire_by_code(code);
        if (id < 0 || !rtm_wire(id)->frame) fprintf(stderr, "  error code %s is not a frame error\n", code);
        CHECK(id >= 0 && rtm_wire(id)->frame);
    }
    /* ... and every frame error of the table is listed */
    for (int id = 0; id < RTM_WIRE__COUNT; id++) {
        if (!rtm_wire(id)->frame) continue;
        int found = 0;
        for (size_t i = 0; i < json_array_size(en); i++)
            found |= !strcmp(json_string_value(json_array_get(en, i)), rtm_wire(id)->code);
        if (!found) fprintf(stderr, "  %s is missing from server.error.json\n", rtm_wire(id)->code);
        CHECK(found);
    }
    json_decref(sc);
}

TEST(error_table_is_complete_and_consistent)
{
    for (int id = 0; id < RTM_WIRE__COUNT; id++) {
        const struct rtm_wire_def *w = rtm_wire(id);
        CHECK(w->code && *w->code);
        CHECK(w->message && strlen(w->message) <= 123); /* a close reason's room */
        /* every entry travels somewhere */
        CHECK(w->frame || w->http_status || w->close_code);
        CHECK(w->http_status == 0 || (w->http_status >= 400 && w->http_status < 600));
        CHECK(w->close_code == 0 || (w->close_code >= 1000 && w->close_code < 5000));
        CHECK(rtm_wire_by_code(w->code) == id); /* codes are unique */
    }
    CHECK(rtm_wire_by_code("no_such_code") == -1);
    CHECK(rtm_wire(RTM_WIRE_TOKEN_EXPIRED)->close_code == 4002);
    CHECK(rtm_wire(RTM_WIRE_CHANNEL_RESERVED)->http_status == 400);
}

/* "No close code or error string as a literal anywhere else": every wire
 * code of the table, quoted, is looked for in the broker, the mint API and
 * sdk-c; only common/protocol.c may spell them. */
static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

TEST(no_error_code_literal_outside_the_table)
{
    static const char *const dirs[] = {"broker", "mint-api", "sdk-c/src", "sdk-c/tool"};
    int files = 0;
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", root(), dirs[d]);
        DIR *dp = opendir(dir);
        CHECK(dp != NULL);
        if (!dp) continue;
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t len = strlen(e->d_name);
            if (len < 3 || (strcmp(e->d_name + len - 2, ".c") && strcmp(e->d_name + len - 2, ".h"))) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            files++;
            for (int id = 0; id < RTM_WIRE__COUNT; id++) {
                const struct rtm_wire_def *w = rtm_wire(id);
                if (!w->frame && !w->http_status) continue; /* close-only names are for logs */
                char q[80], eq[80]; /* "code", and \"code\" inside a C string */
                snprintf(q, sizeof q, "\"%s\"", w->code);
                snprintf(eq, sizeof eq, "\\\"%s\\\"", w->code);
                int has = file_has(path, q) || file_has(path, eq);
                if (has) fprintf(stderr, "  %s spells %s: use the table\n", path, q);
                CHECK(!has);
            }
        }
        closedir(dp);
    }
    CHECK(files > 10);
}

int main(void) { return RUN_TESTS(); }
