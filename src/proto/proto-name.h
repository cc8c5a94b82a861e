/* Names of API objects. Instance names follow LXD's rules: a valid hostname label. */
#pragma once

#include "basic-error.h"

/* 1-63 chars of [a-zA-Z0-9-], not starting with a digit or '-', not ending with '-'.
 * Returns 0 or -EINVAL with a message naming the problem. */
int proto_instance_name_validate(const char *name, struct kiva_error *reterr);

/* Image alias names: 1-255 printable chars, no whitespace, quotes or control chars ('/' is
 * allowed, as in LXD's "debian/bookworm"). */
int proto_alias_name_validate(const char *name, struct kiva_error *reterr);
