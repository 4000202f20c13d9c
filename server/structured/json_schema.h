#ifndef MOESERVE_SERVER_STRUCTURED_JSON_SCHEMA_H_
#define MOESERVE_SERVER_STRUCTURED_JSON_SCHEMA_H_

// JSON Schema (draft 2020-12, with the draft-7 spellings of tuples and definitions) converted to
// the grammar IR. Every string the grammar accepts is a JSON document that validates against the
// schema (the grammar may accept fewer documents than the schema does; each such choice is below).
//
// Keywords:
//   type (all seven, or a list), enum, const, anyOf, oneOf (as anyOf: exclusivity is not
//   enforced), allOf with one schema, $ref to "#..." JSON pointers (recursive; $defs and
//   definitions), nullable (OpenAPI);
//   objects: properties (generated in the schema's order), required, additionalProperties
//   (false, true or a schema; absent means false when `properties` is given, any otherwise;
//   additional keys are never a declared name and use no escapes);
//   arrays: items, prefixItems (items: [..] and additionalItems in draft 7), minItems, maxItems
//   (items beyond prefixItems only when `items` allows them);
//   strings: minLength, maxLength (in code points, an escape counting one), pattern (a whole-
//   string match, regex_parser.h; ^ and $ are optional), format: date, time, date-time, uuid,
//   email, ipv4 (RFC 3339 and the formats Python's jsonschema checks);
//   integers: minimum, maximum, exclusiveMinimum, exclusiveMaximum (exact, any int64);
//   numbers: JSON number syntax; the same bounds when they are integers.
// Annotations are ignored (title, description, default, examples, $comment, $schema, $id,
// readOnly, writeOnly, deprecated, contentEncoding, contentMediaType, discriminator) as are
// "x-" extensions. Anything else gets InvalidArgument naming the keyword and its location, e.g.
// "json_schema: unsupported keyword 'uniqueItems' at #/properties/tags".
//
// Bounds that keep a weak model finite and the automaton small: integers have at most 19 digits,
// fractions 16, exponents 2; maxLength and maxItems above 1024 are treated as 1024 (minLength and
// minItems above 1024 are refused). With `any_whitespace` false (the default) the output is
// compact JSON; with it, up to 32 whitespace characters may appear around every structural
// character.

#include <string_view>

#include "absl/status/statusor.h"
#include "server/structured/grammar.h"

namespace moeserve::structured {

struct JsonSchemaOptions {
  bool any_whitespace = false;
  int32_t max_nesting = 64;  // of the schema document's JSON (deeper: InvalidArgument)
};

// `schema` is the schema's JSON text. InvalidArgument for invalid JSON, a schema that is not an
// object or boolean, unsupported keywords, unresolvable references and contradictions (a schema
// with no instance, e.g. minimum > maximum).
absl::StatusOr<Grammar> JsonSchemaToGrammar(std::string_view schema, const JsonSchemaOptions& options = {});

// Any JSON value (object_only: any JSON object), as for OpenAI's json_object response format.
Grammar AnyJsonGrammar(bool object_only, const JsonSchemaOptions& options = {});

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_JSON_SCHEMA_H_
