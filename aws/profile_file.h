/* One AWS shared file (~/.aws/credentials or ~/.aws/config), read the way
 * botocore reads it: Python's configparser rules (full-line `#` and `;`
 * comments, no inline comments, `=` or `:` between key and value, keys
 * case-insensitive, section names case-sensitive, a repeated section or
 * key is an error), and botocore's profile naming: in the credentials
 * file a section is the profile of that very name; in the config file it
 * is `[profile NAME]` (NAME may be quoted) or `[default]`. */
#ifndef ASG_PROFILE_FILE_H
#define ASG_PROFILE_FILE_H

#include "creds.h"

#include <stddef.h>

enum aws_file_kind { AWS_CREDENTIALS_FILE, AWS_CONFIG_FILE };

/* Fills c's keys and token from profile in the file at path (c->source is
 * left to the caller). Returns 0 when found; 1 when the file, the profile
 * or its aws_access_key_id is absent (botocore goes on to its next source
 * then too); -1 when the file is broken or the profile half-written, with
 * "path:line: why" in err. No value ever goes into err. */
int aws_profile_read(const char *path, enum aws_file_kind kind, const char *profile,
                     struct aws_creds *c, char *err, size_t errsize);

#endif
