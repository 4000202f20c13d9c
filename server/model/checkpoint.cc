#include "server/model/checkpoint.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/mapped_file.h"
#include "server/common/numeric.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

constexpr char kIndexFile[] = "model.safetensors.index.json";
constexpr char kSingleFile[] = "model.safetensors";

// Abseil here is built with its own string_view; this bridges std::string_view into it.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Quoted(std::string_view s) { return absl::StrCat("\"", AV(s), "\""); }

std::string JoinDims(absl::Span<const int64_t> dims) { return absl::StrCat("[", absl::StrJoin(dims, ", "), "]"); }

bool IsSafeRelativePath(const std::string& p) {
  const fs::path path(p);
  if (p.empty() || path.is_absolute()) return false;
  for (const fs::path& part : path) {
    if (part == "..") return false;
  }
  return true;
}

// Converts `bytes` holding `numel` values of a float dtype to fp32. Reads are unaligned-safe.
absl::Status ConvertToF32(absl::Span<const uint8_t> bytes, SafetensorsDType dtype, float* out) {
  const uint8_t* p = bytes.data();
  switch (dtype) {
    case SafetensorsDType::kF32:
      if (!bytes.empty()) std::memcpy(out, p, bytes.size());
      return absl::OkStatus();
    case SafetensorsDType::kBF16:
    case SafetensorsDType::kF16: {
      const size_t n = bytes.size() / 2;
      for (size_t i = 0; i < n; ++i) {
        const uint16_t bits = static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
        out[i] = dtype == SafetensorsDType::kBF16 ? Bf16ToFloat(bits) : Fp16ToFloat(bits);
      }
      return absl::OkStatus();
    }
    default: return absl::InvalidArgumentError(absl::StrCat("unsupported dtype ", AV(SafetensorsDTypeName(dtype))));
  }
}

const std::array<float, 256>& Fp8E4M3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t;
    for (int i = 0; i < 256; ++i) t[i] = Fp8E4M3ToFloat(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir, const CheckpointOptions& options) {
  if (options.fp8_block_rows <= 0 || options.fp8_block_cols <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("FP8 weight block size [", options.fp8_block_rows, ", ",
                                                   options.fp8_block_cols, "] must be positive"));
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a checkpoint directory"));
  }
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint(dir, options));
  const fs::path root(dir);

  if (fs::exists(root / kIndexFile, ec)) {
    const std::string index_path = (root / kIndexFile).string();
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
    const nlohmann::json index = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (index.is_discarded() || !index.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a JSON object"));
    }
    const auto map_it = index.find("weight_map");
    if (map_it == index.end() || !map_it->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": no \"weight_map\" object"));
    }
    // shard file -> tensors the index places in it
    std::map<std::string, std::vector<std::string>> shards;
    for (const auto& [name, shard] : map_it->items()) {
      if (!shard.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": weight_map entry ", Quoted(name), " is not a file name"));
      }
      const std::string& file = shard.get_ref<const std::string&>();
      if (!IsSafeRelativePath(file)) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": shard ", Quoted(file), " of tensor ",
                                                       Quoted(name), " is not a path inside ", dir));
      }
      shards[file].push_back(name);
    }
    for (const auto& [file, names] : shards) {
      const std::string path = (root / file).string();
      if (!fs::exists(path, ec)) {
        return absl::NotFoundError(absl::StrCat(index_path, ": names shard ", Quoted(file), " (holding tensor ",
                                                Quoted(names.front()), "), which is missing from ", dir));
      }
      ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> st, SafetensorsFile::Open(path));
      for (const std::string& name : names) {
        const TensorInfo* info = st->Find(name);
        if (info == nullptr) {
          return absl::DataLossError(
              absl::StrCat(index_path, ": maps tensor ", Quoted(name), " to ", path, ", which does not contain it"));
        }
        ckpt->tensors_.emplace(name, Entry{st.get(), info});
      }
      ckpt->files_.push_back(std::move(st));
    }
    return ckpt;
  }

  std::vector<std::string> paths;
  if (fs::exists(root / kSingleFile, ec)) {
    paths.push_back((root / kSingleFile).string());
  } else {
    for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
      if (e.path().extension() == ".safetensors") paths.push_back(e.path().string());
    }
    if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot list: ", ec.message()));
    std::sort(paths.begin(), paths.end());
  }
  if (paths.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no ", kIndexFile, ", ", kSingleFile, " or *.safetensors files"));
  }
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> st, SafetensorsFile::Open(path));
    RETURN_IF_ERROR(ckpt->AddFile(std::move(st)));
  }
  return ckpt;
}

absl::Status Checkpoint::AddFile(std::unique_ptr<SafetensorsFile> file) {
  for (const TensorInfo& info : file->tensors()) {
    const auto [it, inserted] = tensors_.emplace(info.name, Entry{file.get(), &info});
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(info.name), " appears in both ",
                                                     it->second.file->path(), " and ", file->path()));
    }
  }
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint::Entry> Checkpoint::Find(std::string_view name) const {
  const auto it = tensors_.find(AV(name));
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor ", Quoted(name), " not found in checkpoint ", dir_));
  }
  return it->second;
}

bool Checkpoint::Has(std::string_view name) const { return tensors_.contains(AV(name)); }

absl::StatusOr<const TensorInfo*> Checkpoint::Info(std::string_view name) const {
  ASSIGN_OR_RETURN(const Entry entry, Find(name));
  return entry.info;
}

absl::StatusOr<absl::Span<const uint8_t>> Checkpoint::RawData(std::string_view name) const {
  ASSIGN_OR_RETURN(const Entry entry, Find(name));
  return entry.file->Data(*entry.info);
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<float>> Checkpoint::LoadF32(std::string_view name,
                                                       absl::Span<const int64_t> expected_shape) const {
  return LoadF32Slice(name, expected_shape, 0, 0, expected_shape.empty() ? 1 : expected_shape[0]);
}

absl::StatusOr<std::vector<float>> Checkpoint::LoadF32Slice(std::string_view name,
                                                            absl::Span<const int64_t> expected_shape, int dim,
                                                            int64_t begin, int64_t count) const {
  ASSIGN_OR_RETURN(const Entry entry, Find(name));
  const TensorInfo& info = *entry.info;
  const auto where = [&] { return absl::StrCat("tensor ", Quoted(name), " in ", entry.file->path()); };
  if (absl::Span<const int64_t>(info.shape) != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(where(), ": shape ", info.ShapeString(),
                                                   " does not match the expected ", JoinDims(expected_shape)));
  }
  // A scalar is its own one-element slice along a notional dimension 0.
  const std::vector<int64_t> shape = info.shape.empty() ? std::vector<int64_t>{1} : info.shape;
  if (dim < 0 || dim >= static_cast<int>(shape.size()) || begin < 0 || count < 0 || begin + count > shape[dim]) {
    return absl::InvalidArgumentError(absl::StrCat(where(), ": slice [", begin, ", ", begin + count, ") of dimension ",
                                                   dim, " is outside ", info.ShapeString()));
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i) outer *= shape[i];
  for (size_t i = dim + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t n = shape[dim];
  std::vector<float> out(static_cast<size_t>(outer * count * inner));
  const absl::Span<const uint8_t> bytes = entry.file->Data(info);
  switch (info.file_dtype) {
    case SafetensorsDType::kF32:
    case SafetensorsDType::kBF16:
    case SafetensorsDType::kF16: {
      const size_t esize = info.file_dtype == SafetensorsDType::kF32 ? 4 : 2;
      for (int64_t o = 0; o < outer; ++o) {
        const size_t from = static_cast<size_t>((o * n + begin) * inner) * esize;
        RETURN_IF_ERROR(ConvertToF32(bytes.subspan(from, static_cast<size_t>(count * inner) * esize), info.file_dtype,
                                     out.data() + o * count * inner));
      }
      return out;
    }
    case SafetensorsDType::kF8E4M3: break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(where(), ": unsupported dtype ",
                                                     AV(SafetensorsDTypeName(info.file_dtype)),
                                                     " (LoadF32 reads F32, BF16, F16 and F8_E4M3)"));
  }

  // FP8 with block scales: every element scaled by the block its place in the whole tensor is in.
  if (info.shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), ": F8_E4M3 tensor of shape ", info.ShapeString(), " is not 2-D"));
  }
  const std::string scale_name = absl::StrCat(AV(name), "_scale_inv");
  const auto scale_it = tensors_.find(scale_name);
  if (scale_it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat(where(), ": F8_E4M3 tensor has no scale tensor ", Quoted(scale_name), " in checkpoint ", dir_));
  }
  const TensorInfo& scale_info = *scale_it->second.info;
  const int64_t rows = info.shape[0], cols = info.shape[1];
  const int64_t br = options_.fp8_block_rows, bc = options_.fp8_block_cols;
  const int64_t scale_rows = (rows + br - 1) / br, scale_cols = (cols + bc - 1) / bc;
  const std::vector<int64_t> scale_shape = {scale_rows, scale_cols};
  if (scale_info.shape != scale_shape) {
    return absl::InvalidArgumentError(absl::StrCat(where(), ": scale tensor ", Quoted(scale_name), " has shape ",
                                                   scale_info.ShapeString(), ", expected ", JoinDims(scale_shape),
                                                   " for blocks of [", br, ", ", bc, "]"));
  }
  std::vector<float> scale(static_cast<size_t>(scale_info.numel));
  const absl::Status scale_status =
      ConvertToF32(scale_it->second.file->Data(scale_info), scale_info.file_dtype, scale.data());
  if (!scale_status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), ": scale tensor ", Quoted(scale_name), ": ", scale_status.message()));
  }
  const std::array<float, 256>& fp8 = Fp8E4M3Table();
  const int64_t r0 = dim == 0 ? begin : 0, r1 = dim == 0 ? begin + count : rows;
  const int64_t c0 = dim == 1 ? begin : 0, c1 = dim == 1 ? begin + count : cols;
  float* o = out.data();
  for (int64_t r = r0; r < r1; ++r) {
    const float* scale_row = scale.data() + (r / br) * scale_cols;
    const uint8_t* in = bytes.data() + r * cols;
    for (int64_t c = c0; c < c1; ++c) *o++ = fp8[in[c]] * scale_row[c / bc];
  }
  return out;
}

std::shared_ptr<const void> Checkpoint::Mapping(std::string_view name) const {
  const auto it = tensors_.find(AV(name));
  return it == tensors_.end() ? nullptr : it->second.file->mapping();
}

void Checkpoint::DropPages(std::string_view name) const {
  const auto it = tensors_.find(AV(name));
  if (it != tensors_.end()) it->second.file->DropPages(*it->second.info);
}

}  // namespace moeserve
