#include "server/backend/backend.h"

#include "server/backend/op_checks.h"

namespace moeserve {

absl::StatusOr<Tensor> Backend::CreateWeightFromHost(const HostWeight& w) {
  if (absl::Status s = CheckHostWeight("CreateWeightFromHost", w); !s.ok()) return s;
  return CreateWeight(HostWeightToF32(w), w.shape);
}

}  // namespace moeserve
