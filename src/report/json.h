/* A small JSON reader (RFC 8259) for the report: the audits' JSON files become a tree of values.
 * Strict grammar, bounded nesting, every allocation through sal_malloc. */
#ifndef SAL_REPORT_JSON_H
#define SAL_REPORT_JSON_H

#include "core/core.h"

typedef enum { RJ_NULL, RJ_BOOL, RJ_NUM, RJ_STR, RJ_ARR, RJ_OBJ } rj_type;

typedef struct rj_value {
    rj_type type;
    double num;              /* RJ_NUM; RJ_BOOL: 0 or 1 */
    char *str;               /* RJ_STR: UTF-8, NUL-terminated (an embedded \u0000 ends it) */
    int n;                   /* RJ_ARR, RJ_OBJ: members */
    struct rj_value *items;  /* the members' values */
    char **keys;             /* RJ_OBJ: their names */
} rj_value;

#define RJ_MAX_DEPTH 64

/* Parses txt[0..len) into *out (free with rj_free); name stands for the file in messages. */
sal_status rj_parse(const char *txt, size_t len, const char *name, rj_value *out /* OUT */);
void rj_free(rj_value *v);

/* Member `key` of an object, NULL when v is not an object or has no such member. */
const rj_value *rj_get(const rj_value *v, const char *key);
/* Item i of an array, NULL when out of range or not an array. */
const rj_value *rj_at(const rj_value *v, int i);
/* The number (or boolean as 0/1), else NAN (null, missing, other types). */
double rj_num(const rj_value *v);
/* The string, else def. */
const char *rj_str(const rj_value *v, const char *def);
/* Shorthands for members. */
double rj_getnum(const rj_value *v, const char *key);
const char *rj_getstr(const rj_value *v, const char *key, const char *def);

#endif
