/* Validation of user-chosen names (LXD's instance name rules: RFC 1123 hostname label, ≤ 63). */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "proto-name.h"

int proto_instance_name_validate(const char *name, struct kiva_error *reterr)
{
	size_t len;

	if (!name || !*name)
		return kiva_error_set(reterr, -EINVAL, "Instance name is required");
	len = strlen(name);
	if (len > 63)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid instance name '%.70s': longer than 63 characters",
				      name);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!(isascii(c) && (isalnum(c) || c == '-')))
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid instance name '%s': only letters, digits and '-' "
				"are allowed",
				name);
	}
	if (name[0] == '-' || isdigit((unsigned char)name[0]))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid instance name '%s': must start with a letter", name);
	if (name[len - 1] == '-')
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid instance name '%s': must not end with '-'", name);
	return 0;
}

int proto_alias_name_validate(const char *name, struct kiva_error *reterr)
{
	size_t len;

	if (!name || !*name)
		return kiva_error_set(reterr, -EINVAL, "Alias name is required");
	len = strlen(name);
	if (len > 255)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid alias name: longer than 255 characters");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= ' ' || c == 0x7f || c == '"' || c == '\\')
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid alias name '%s': no spaces, quotes or control "
				"characters",
				name);
	}
	return 0;
}
