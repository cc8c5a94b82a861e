/* YAML → JSON for the backup.yaml of imported backups (LXD writes it with go-yaml: block maps
 * and lists, plain or quoted scalars). libyaml's document loader, then a walk that refuses what
 * an attacker could use to make the walk explode: aliases (billion laughs), deep nesting, too many
 * nodes. Plain scalars true/false/null/~ and integers become JSON booleans, null and numbers (as
 * go-yaml reads them); every other scalar is a string. Linked only by kiva-archive-helper. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "basic-json.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

#define YAML_DEPTH_MAX 64
#define YAML_NODES_MAX (1u << 20)

struct walk {
	yaml_document_t *doc;
	size_t visited;
	struct kiva_error *reterr;
};

static json_t *scalar(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	int64_t i;

	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (streq(v, "true") || streq(v, "True") || streq(v, "TRUE"))
			return json_true();
		if (streq(v, "false") || streq(v, "False") || streq(v, "FALSE"))
			return json_false();
		if (len == 0 || streq(v, "null") || streq(v, "~") || streq(v, "Null"))
			return json_null();
		if (parse_int64(v, INT64_MIN, INT64_MAX, &i) == 0)
			return json_integer((json_int_t)i);
	}
	return json_stringn(v, len);
}

static json_t *walk_node(struct walk *w, yaml_node_t *n, unsigned depth)
{
	json_t *out;

	if (!n) {
		kiva_error_set(w->reterr, -EINVAL, "backup.yaml: a node refers to nothing");
		return NULL;
	}
	if (depth > YAML_DEPTH_MAX || ++w->visited > YAML_NODES_MAX) {
		kiva_error_set(w->reterr, -E2BIG,
			       "backup.yaml: nested deeper than %d or more than %u "
			       "nodes (aliases are not followed)",
			       YAML_DEPTH_MAX, YAML_NODES_MAX);
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		out = scalar(n);
		if (!out)
			kiva_error_set(w->reterr, -EINVAL, "backup.yaml: a scalar is not UTF-8");
		return out;
	case YAML_SEQUENCE_NODE:
		out = json_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     out && it < n->data.sequence.items.top; it++) {
			json_t *v = walk_node(w, yaml_document_get_node(w->doc, *it), depth + 1);

			if (!v || json_array_append_new(out, v) < 0) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	case YAML_MAPPING_NODE:
		out = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     out && p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
			json_t *v;

			if (!k || k->type != YAML_SCALAR_NODE) {
				kiva_error_set(w->reterr, -EINVAL,
					       "backup.yaml: a mapping key is not a scalar");
				json_decref(out);
				return NULL;
			}
			v = walk_node(w, yaml_document_get_node(w->doc, p->value), depth + 1);
			if (!v || json_object_setn_new(out, (const char *)k->data.scalar.value,
						       k->data.scalar.length, v) < 0) {
				if (v)
					kiva_error_set(w->reterr, -EINVAL,
						       "backup.yaml: a key is not UTF-8");
				json_decref(out);
				return NULL;
			}
		}
		return out;
	default:
		kiva_error_set(w->reterr, -EINVAL, "backup.yaml: unexpected node");
		return NULL;
	}
}

int image_yaml_to_json(const char *text, size_t len, json_t **ret, struct kiva_error *reterr)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct walk w = {.doc = &doc, .reterr = reterr};
	json_t *out = NULL;

	if (len > IMAGE_BACKUP_YAML_MAX_BYTES)
		return kiva_error_set(reterr, -E2BIG, "backup.yaml is larger than %d bytes",
				      IMAGE_BACKUP_YAML_MAX_BYTES);
	if (!yaml_parser_initialize(&parser))
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		kiva_error_set(reterr, -EINVAL, "backup.yaml line %zu: %s",
			       parser.problem_mark.line + 1,
			       parser.problem ? parser.problem : "not YAML");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	if (!yaml_document_get_root_node(&doc))
		kiva_error_set(reterr, -EINVAL, "backup.yaml is empty");
	else
		out = walk_node(&w, yaml_document_get_root_node(&doc), 0);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (!out)
		return reterr && reterr->code ? reterr->code : -EINVAL;
	if (!json_is_object(out)) {
		json_decref(out);
		return kiva_error_set(reterr, -EINVAL, "backup.yaml is not a mapping");
	}
	*ret = out;
	return 0;
}
