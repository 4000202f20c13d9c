#include "server/model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

using Json = nlohmann::json;

struct DTypeEntry {
  SafetensorsDType dtype;
  std::string_view name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {SafetensorsDType::kBool, "BOOL", 1},      {SafetensorsDType::kU8, "U8", 1},
    {SafetensorsDType::kI8, "I8", 1},          {SafetensorsDType::kI16, "I16", 2},
    {SafetensorsDType::kU16, "U16", 2},        {SafetensorsDType::kI32, "I32", 4},
    {SafetensorsDType::kU32, "U32", 4},        {SafetensorsDType::kI64, "I64", 8},
    {SafetensorsDType::kU64, "U64", 8},        {SafetensorsDType::kF8E4M3, "F8_E4M3", 1},
    {SafetensorsDType::kF8E5M2, "F8_E5M2", 1}, {SafetensorsDType::kF8E8M0, "F8_E8M0", 1},
    {SafetensorsDType::kF16, "F16", 2},        {SafetensorsDType::kBF16, "BF16", 2},
    {SafetensorsDType::kF32, "F32", 4},        {SafetensorsDType::kF64, "F64", 8},
};

// Sub-byte dtypes of newer safetensors versions: recognised only to give a precise error.
constexpr std::string_view kSubByteDTypes[] = {"F4", "F6_E2M3", "F6_E3M2"};

// Abseil here is built with its own string_view; this bridges std::string_view into it.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Quoted(std::string_view s) { return absl::StrCat("\"", absl::Utf8SafeCHexEscape(AV(s)), "\""); }

std::string JoinDims(absl::Span<const int64_t> dims) { return absl::StrCat("[", absl::StrJoin(dims, ", "), "]"); }

// Formats errors as `<file>: tensor "<name>": <reason>`.
class ErrorPrefix {
 public:
  explicit ErrorPrefix(std::string_view file) : file_(file) {}
  absl::Status File(std::string_view reason) const {
    return absl::InvalidArgumentError(absl::StrCat(AV(file_), ": ", AV(reason)));
  }
  absl::Status Tensor(std::string_view tensor, std::string_view reason) const {
    return absl::InvalidArgumentError(absl::StrCat(AV(file_), ": tensor ", Quoted(tensor), ": ", AV(reason)));
  }

 private:
  std::string_view file_;
};

// A JSON value for an error message, cut short: headers can hold arbitrarily large values.
std::string Abbrev(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 64) s = s.substr(0, 60) + " ...";
  return s;
}

enum class IntKind { kOk, kNotInteger, kNegative, kTooLarge };

// Reads a JSON non-negative integer that fits in int64.
IntKind ReadNonNegative(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return IntKind::kTooLarge;
    *out = static_cast<int64_t>(u);
    return IntKind::kOk;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return IntKind::kNegative;
    *out = i;
    return IntKind::kOk;
  }
  return IntKind::kNotInteger;
}

// Tracks the keys of each open JSON object during parsing to find duplicates, which nlohmann::json
// would otherwise silently overwrite, and bounds the nesting depth.
class DuplicateKeyChecker {
 public:
  static constexpr int kMaxDepth = 32;

  bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: keys_.emplace_back(); break;
      case Json::parse_event_t::object_end:
        if (!keys_.empty()) keys_.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys_.empty() && parsed.is_string() && !duplicate_) {
          const std::string& key = parsed.get_ref<const std::string&>();
          if (!keys_.back().insert(key).second) {
            duplicate_ = key;
            duplicate_top_level_ = keys_.size() == 1;
          }
        }
        break;
      default: break;
    }
    if (depth > kMaxDepth) too_deep_ = true;
    return true;
  }

  const std::optional<std::string>& duplicate() const { return duplicate_; }
  bool duplicate_top_level() const { return duplicate_top_level_; }
  bool too_deep() const { return too_deep_; }

 private:
  std::vector<absl::flat_hash_set<std::string>> keys_;
  std::optional<std::string> duplicate_;
  bool duplicate_top_level_ = false;
  bool too_deep_ = false;
};

absl::StatusOr<TensorInfo> ParseEntry(const ErrorPrefix& err, const std::string& name, const Json& entry,
                                      uint64_t data_size) {
  if (!entry.is_object()) {
    return err.Tensor(name, absl::StrCat("entry is a JSON ", entry.type_name(), ", not an object"));
  }
  TensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return err.Tensor(name, "missing \"dtype\"");
  if (!dtype_it->is_string()) return err.Tensor(name, "\"dtype\" is not a string");
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  const std::optional<SafetensorsDType> dtype = SafetensorsDTypeFromName(dtype_name);
  if (!dtype) {
    for (std::string_view sub_byte : kSubByteDTypes) {
      if (dtype_name == sub_byte) {
        return err.Tensor(name, absl::StrCat("unsupported dtype ", dtype_name, " (sub-byte dtype)"));
      }
    }
    return err.Tensor(name, absl::StrCat("unknown dtype ", Quoted(dtype_name)));
  }
  info.file_dtype = *dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return err.Tensor(name, "missing \"shape\"");
  if (!shape_it->is_array()) return err.Tensor(name, "\"shape\" is not an array");
  int64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape_it->size(); ++i) {
    int64_t dim = 0;
    switch (ReadNonNegative((*shape_it)[i], &dim)) {
      case IntKind::kOk: break;
      case IntKind::kNegative:
        return err.Tensor(name, absl::StrCat("shape ", Abbrev(*shape_it), " has a negative dimension"));
      case IntKind::kNotInteger: return err.Tensor(name, absl::StrCat("shape dimension ", i, " is not an integer"));
      case IntKind::kTooLarge:
        return err.Tensor(name, absl::StrCat("shape ", Abbrev(*shape_it), " has a dimension above 2^63"));
    }
    info.shape.push_back(dim);
    overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
  }
  const uint64_t elem_size = SafetensorsDTypeSize(info.file_dtype);
  uint64_t nbytes = 0;
  // A zero dimension makes numel 0 however large the others are; only overflow of a non-empty
  // shape is an error.
  const bool empty = std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end();
  if (empty) {
    numel = 0;
  } else if (overflow || __builtin_mul_overflow(static_cast<uint64_t>(numel), elem_size, &nbytes)) {
    return err.Tensor(name,
                      absl::StrCat("shape ", info.ShapeString(), " of ", dtype_name, " overflows the element count"));
  }
  info.numel = numel;
  info.nbytes = nbytes;

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) return err.Tensor(name, "missing \"data_offsets\"");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return err.Tensor(name, absl::StrCat("\"data_offsets\" is not an array of 2 integers: ", Abbrev(*offsets_it)));
  }
  int64_t begin = 0, end = 0;
  if (ReadNonNegative((*offsets_it)[0], &begin) != IntKind::kOk ||
      ReadNonNegative((*offsets_it)[1], &end) != IntKind::kOk) {
    return err.Tensor(name, absl::StrCat("\"data_offsets\" ", Abbrev(*offsets_it), " are not integers in [0, 2^63)"));
  }
  const std::string offsets = absl::StrCat("data_offsets [", begin, ", ", end, "]");
  if (end < begin) return err.Tensor(name, absl::StrCat(offsets, " end before they begin"));
  if (static_cast<uint64_t>(end - begin) != nbytes) {
    return err.Tensor(name, absl::StrCat(offsets, " do not match shape ", info.ShapeString(), " of ", dtype_name, " (",
                                         nbytes, " bytes)"));
  }
  if (static_cast<uint64_t>(end) > data_size) {
    return err.Tensor(name, absl::StrCat(offsets, " extend past the end of the data section (", data_size,
                                         " bytes); is the file truncated?"));
  }
  info.offset = static_cast<uint64_t>(begin);  // made absolute by the caller
  return info;
}

}  // namespace

std::string_view SafetensorsDTypeName(SafetensorsDType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e.name;
  }
  return "?";
}

size_t SafetensorsDTypeSize(SafetensorsDType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e.size;
  }
  return 0;
}

std::optional<SafetensorsDType> SafetensorsDTypeFromName(std::string_view name) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.name == name) return e.dtype;
  }
  return std::nullopt;
}

std::optional<DType> ToDType(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::kF32: return DType::kF32;
    case SafetensorsDType::kBF16: return DType::kBF16;
    case SafetensorsDType::kF16: return DType::kF16;
    case SafetensorsDType::kF8E4M3: return DType::kF8E4M3;
    case SafetensorsDType::kI32: return DType::kI32;
    case SafetensorsDType::kI64: return DType::kI64;
    case SafetensorsDType::kU8: return DType::kU8;
    default: return std::nullopt;
  }
}

SafetensorsDType ToSafetensorsDType(DType dtype) {
  switch (dtype) {
    case DType::kF32: return SafetensorsDType::kF32;
    case DType::kBF16: return SafetensorsDType::kBF16;
    case DType::kF16: return SafetensorsDType::kF16;
    case DType::kF8E4M3: return SafetensorsDType::kF8E4M3;
    case DType::kI32: return SafetensorsDType::kI32;
    case DType::kI64: return SafetensorsDType::kI64;
    case DType::kU8: return SafetensorsDType::kU8;
  }
  return SafetensorsDType::kU8;
}

std::string TensorInfo::ShapeString() const { return JoinDims(shape); }

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::Span<const uint8_t> file, std::string_view file_name) {
  const ErrorPrefix err(file_name);
  if (file.size() < 8) {
    return err.File(absl::StrCat("file is ", file.size(), " bytes, too short for the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return err.File(absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxSafetensorsHeaderBytes,
                                 " bytes; not a safetensors file?"));
  }
  if (header_len > file.size() - 8) {
    return err.File(absl::StrCat("header length ", header_len, " runs past the end of the file (", file.size(),
                                 " bytes); is the file truncated?"));
  }
  if (header_len == 0) return err.File("header is empty");

  const char* json_begin = reinterpret_cast<const char*>(file.data() + 8);
  const char* json_end = json_begin + header_len;
  DuplicateKeyChecker checker;
  Json root;
  try {
    root = Json::parse(json_begin, json_end, std::ref(checker), /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    return err.File(absl::StrCat("header is not valid JSON: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(AV(file_name), ": out of memory parsing the header"));
  }
  if (checker.too_deep()) {
    return err.File(absl::StrCat("header JSON nests deeper than ", DuplicateKeyChecker::kMaxDepth));
  }
  if (checker.duplicate()) {
    if (checker.duplicate_top_level()) return err.Tensor(*checker.duplicate(), "duplicate name");
    return err.File(absl::StrCat("duplicate key ", Quoted(*checker.duplicate()), " in the header"));
  }
  if (!root.is_object()) {
    return err.File(absl::StrCat("header is a JSON ", root.type_name(), ", not an object"));
  }

  SafetensorsHeader header;
  header.data_offset = 8 + header_len;
  const uint64_t data_size = file.size() - header.data_offset;
  header.tensors.reserve(root.size());
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return err.File("\"__metadata__\" is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return err.File(absl::StrCat("\"__metadata__\" value of ", Quoted(key), " is a JSON ", value.type_name(),
                                       ", not a string"));
        }
        header.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(err, name, entry, data_size));
    header.tensors.push_back(std::move(info));
  }

  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
  });
  // Overlap among tensors that hold bytes: sorted by begin, each must start at or after the
  // furthest end seen so far.
  const TensorInfo* furthest = nullptr;
  for (const TensorInfo& t : header.tensors) {
    if (t.nbytes == 0) continue;
    if (furthest != nullptr && t.offset < furthest->offset + furthest->nbytes) {
      return err.Tensor(t.name, absl::StrCat("data_offsets [", t.offset, ", ", t.offset + t.nbytes,
                                             "] overlap those of tensor ", Quoted(furthest->name), " [",
                                             furthest->offset, ", ", furthest->offset + furthest->nbytes, "]"));
    }
    if (furthest == nullptr || t.offset + t.nbytes > furthest->offset + furthest->nbytes) furthest = &t;
  }
  for (TensorInfo& t : header.tensors) t.offset += header.data_offset;
  return header;
}

// ---- SafetensorsFile ----------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(std::shared_ptr<const MappedFile> file, SafetensorsHeader header)
    : file_(std::move(file)), header_(std::move(header)) {
  index_.reserve(header_.tensors.size());
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  ASSIGN_OR_RETURN(SafetensorsHeader header, ParseSafetensorsHeader(file->bytes(), path));
  return std::unique_ptr<SafetensorsFile>(new SafetensorsFile(std::move(file), std::move(header)));
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  const auto it = index_.find(AV(name));
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Data(const TensorInfo& info) const {
  return file_->bytes().subspan(info.offset, info.nbytes);
}

// ---- Writing ------------------------------------------------------------------------------------

absl::Status WriteSafetensors(const std::string& path, absl::Span<const HostTensor> tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  absl::flat_hash_set<std::string_view> names;
  uint64_t offset = 0;
  for (const HostTensor& t : tensors) {
    const auto fail = [&](std::string_view reason) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write tensor ", Quoted(t.name), ": ", AV(reason)));
    };
    if (t.name.empty() || t.name == "__metadata__") return fail("reserved or empty name");
    if (!names.insert(t.name).second) return fail("duplicate name");
    const SafetensorsDType dtype = ToSafetensorsDType(t.dtype);
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return fail(absl::StrCat("negative dimension in shape ", JoinDims(t.shape)));
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) return fail("shape overflows");
    }
    if (numel * SafetensorsDTypeSize(dtype) != t.data.size()) {
      return fail(absl::StrCat("shape ", JoinDims(t.shape), " of ", AV(SafetensorsDTypeName(dtype)), " needs ",
                               numel * SafetensorsDTypeSize(dtype), " bytes but data has ", t.data.size()));
    }
    header[t.name] = {
        {"dtype", SafetensorsDTypeName(dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot encode header: ", e.what()));
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(uint64_t{json.size()} >> (8 * i));

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  }
  bool ok = std::fwrite(len_bytes, 1, 8, f) == 8 && std::fwrite(json.data(), 1, json.size(), f) == json.size();
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    const std::vector<uint8_t>& data = tensors[i].data;
    ok = data.empty() || std::fwrite(data.data(), 1, data.size(), f) == data.size();
  }
  const int write_errno = errno;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::remove(tmp.c_str());
    return absl::DataLossError(absl::StrCat(tmp, ": write failed: ", std::strerror(write_errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("rename ", tmp, " -> ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
