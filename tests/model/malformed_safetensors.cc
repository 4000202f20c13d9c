#include "tests/model/malformed_safetensors.h"

#include <string>

namespace moeserve::testing {
namespace {

std::string LengthPrefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

std::string Entry(std::string_view name, std::string_view dtype, std::string_view shape, std::string_view offsets) {
  return std::string("\"") + std::string(name) + "\": {\"dtype\": \"" + std::string(dtype) +
         "\", \"shape\": " + std::string(shape) + ", \"data_offsets\": " + std::string(offsets) + "}";
}

}  // namespace

std::string RawSafetensors(std::string_view json, size_t data_bytes) {
  return LengthPrefix(json.size()) + std::string(json) + std::string(data_bytes, '\xAB');
}

std::string ValidSafetensors() {
  return RawSafetensors("{\"__metadata__\": {\"format\": \"pt\"}, " + Entry("a", "BF16", "[2, 3]", "[0, 12]") + ", " +
                            Entry("b", "F32", "[2]", "[12, 20]") + "}",
                        20);
}

std::vector<MalformedCase> MalformedSafetensorsCases() {
  std::vector<MalformedCase> c;
  const auto one = [](std::string_view entry, size_t data = 64) {
    return RawSafetensors("{" + std::string(entry) + "}", data);
  };
  const std::string valid = ValidSafetensors();
  const size_t header_end = valid.size() - 20;

  // Lengths and truncation.
  c.push_back({"Empty", "", "too short"});
  c.push_back({"SevenBytes", std::string(7, '\0'), "too short"});
  c.push_back({"HeaderLengthPastEof", LengthPrefix(100) + "{}", "runs past the end of the file"});
  c.push_back({"HeaderLengthHuge", LengthPrefix(uint64_t{1} << 63) + "{}", "exceeds the limit"});
  c.push_back({"HeaderLengthAllOnes", LengthPrefix(~uint64_t{0}) + "{}", "exceeds the limit"});
  c.push_back({"HeaderLengthJustOverLimit", LengthPrefix(100'000'001) + "{}", "exceeds the limit"});
  c.push_back({"HeaderLengthZero", LengthPrefix(0), "header is empty"});
  c.push_back({"TruncatedInLength", valid.substr(0, 4), "too short"});
  c.push_back({"TruncatedInHeader", valid.substr(0, 20), "runs past the end of the file"});
  c.push_back({"TruncatedAtDataStart", valid.substr(0, header_end), "is the file truncated?"});
  c.push_back({"TruncatedInFirstTensor", valid.substr(0, header_end + 5), "extend past the end"});
  c.push_back({"TruncatedInLastTensor", valid.substr(0, valid.size() - 1),
               "tensor \"b\": data_offsets [12, 20] extend past the end of the data section (19 bytes)"});

  // JSON.
  c.push_back({"BadJson", RawSafetensors("{\"a\": ", 0), "not valid JSON"});
  c.push_back({"TrailingGarbage", RawSafetensors("{} x", 0), "not valid JSON"});
  c.push_back({"TrailingComma", RawSafetensors("{\"__metadata__\": {},}", 0), "not valid JSON"});
  c.push_back({"InvalidUtf8", RawSafetensors("{\"\xff\": 1}", 0), "not valid JSON"});
  c.push_back({"NulInHeader", RawSafetensors(std::string("{\0}", 3), 0), "not valid JSON"});
  c.push_back({"TopLevelArray", RawSafetensors("[1, 2]", 0), "header is a JSON array, not an object"});
  c.push_back({"TopLevelString", RawSafetensors("\"x\"", 0), "not an object"});
  c.push_back({"DeepNesting", RawSafetensors("{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}", 0),
               "nests deeper"});
  c.push_back({"VeryDeepNesting",
               RawSafetensors("{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}", 0),
               "nests deeper"});
  c.push_back({"VeryDeepUnclosed", RawSafetensors("{\"a\": " + std::string(100000, '{'), 0), "not valid JSON"});

  // Entries.
  c.push_back({"EntryNumber", one("\"a\": 3"), "tensor \"a\": entry is a JSON number, not an object"});
  c.push_back({"EntryArray", one("\"a\": [1]"), "tensor \"a\": entry is a JSON array"});
  c.push_back({"EntryNull", one("\"a\": null"), "tensor \"a\": entry is a JSON null"});
  c.push_back({"MissingDtype", one("\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}"), "missing \"dtype\""});
  c.push_back({"MissingShape", one("\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}"), "missing \"shape\""});
  c.push_back({"MissingOffsets", one("\"a\": {\"dtype\": \"F32\", \"shape\": [1]}"), "missing \"data_offsets\""});
  c.push_back({"DtypeNotString", one("\"a\": {\"dtype\": 7, \"shape\": [1], \"data_offsets\": [0, 4]}"),
               "\"dtype\" is not a string"});
  c.push_back({"UnknownDtype", one(Entry("a", "Q7", "[1]", "[0, 4]")), "unknown dtype \"Q7\""});
  c.push_back({"LowercaseDtype", one(Entry("a", "bf16", "[1]", "[0, 2]")), "unknown dtype \"bf16\""});
  c.push_back({"SubByteDtype", one(Entry("a", "F4", "[2]", "[0, 1]")), "unsupported dtype F4"});
  c.push_back({"ShapeNotArray", one(Entry("a", "F32", "4", "[0, 16]")), "\"shape\" is not an array"});
  c.push_back({"ShapeOfStrings", one(Entry("a", "F32", "[\"4\"]", "[0, 16]")), "dimension 0 is not an integer"});
  c.push_back({"ShapeFloatDim", one(Entry("a", "F32", "[2, 1.5]", "[0, 12]")), "dimension 1 is not an integer"});
  c.push_back({"NegativeDim", one(Entry("a", "F32", "[2, -3]", "[0, 24]")), "negative dimension"});
  c.push_back({"DimAboveInt64", one(Entry("a", "U8", "[18446744073709551615]", "[0, 1]")), "above 2^63"});
  c.push_back({"ShapeProductOverflow", one(Entry("a", "U8", "[4294967296, 4294967296]", "[0, 1]")),
               "overflows the element count"});
  c.push_back(
      {"ByteCountOverflow", one(Entry("a", "F32", "[4611686018427387904]", "[0, 1]")), "overflows the element count"});
  c.push_back({"OffsetsNotArray", one(Entry("a", "F32", "[1]", "0")), "not an array of 2 integers"});
  c.push_back({"OffsetsThree", one(Entry("a", "F32", "[1]", "[0, 4, 8]")), "not an array of 2 integers"});
  c.push_back({"OffsetsNegative", one(Entry("a", "F32", "[1]", "[-4, 0]")), "are not integers in [0, 2^63)"});
  c.push_back({"OffsetsFloat", one(Entry("a", "F32", "[1]", "[0, 4.0]")), "are not integers in [0, 2^63)"});
  c.push_back({"OffsetsReversed", one(Entry("a", "F32", "[0]", "[8, 0]")), "end before they begin"});
  c.push_back({"ShapeOffsetMismatch",
               one(Entry("model.layers.0.mlp.up_proj.weight", "BF16", "[64, 172]", "[0, 1024]"), 1024),
               "model.safetensors: tensor \"model.layers.0.mlp.up_proj.weight\": data_offsets [0, 1024] "
               "do not match shape [64, 172] of BF16 (22016 bytes)"});
  c.push_back({"OffsetsOutsideData", one(Entry("a", "F32", "[4]", "[0, 16]"), 8),
               "extend past the end of the data section (8 bytes)"});
  c.push_back({"OffsetsFarOutside", one(Entry("a", "U8", "[4]", "[18446744073709551610, 18446744073709551614]"), 8),
               "are not integers in [0, 2^63)"});
  c.push_back({"Overlap", one(Entry("a", "F32", "[2]", "[0, 8]") + ", " + Entry("b", "F32", "[2]", "[4, 12]"), 16),
               "tensor \"b\": data_offsets [4, 12] overlap those of tensor \"a\" [0, 8]"});
  c.push_back(
      {"SameRange", one(Entry("a", "F32", "[2]", "[0, 8]") + ", " + Entry("b", "U8", "[8]", "[0, 8]"), 8), "overlap"});
  c.push_back({"Contained", one(Entry("a", "F32", "[4]", "[0, 16]") + ", " + Entry("b", "U8", "[2]", "[4, 6]"), 16),
               "overlap"});
  c.push_back({"DuplicateName", one(Entry("a", "F32", "[1]", "[0, 4]") + ", " + Entry("a", "F32", "[1]", "[4, 8]"), 8),
               "tensor \"a\": duplicate name"});
  c.push_back({"DuplicateKeyInEntry",
               one("\"a\": {\"dtype\": \"F32\", \"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 4]}"),
               "duplicate key \"dtype\""});

  // Metadata.
  c.push_back({"MetadataNotObject", RawSafetensors("{\"__metadata__\": [1]}", 0), "\"__metadata__\" is not an object"});
  c.push_back({"MetadataValueNotString", RawSafetensors("{\"__metadata__\": {\"k\": 1}}", 0),
               "\"__metadata__\" value of \"k\" is a JSON number, not a string"});
  c.push_back(
      {"DuplicateMetadata", RawSafetensors("{\"__metadata__\": {}, \"__metadata__\": {}}", 0), "duplicate name"});
  return c;
}

}  // namespace moeserve::testing
