#ifndef MOESERVE_SERVER_MODEL_ARCH_FAMILIES_H_
#define MOESERVE_SERVER_MODEL_ARCH_FAMILIES_H_

// The built-in architecture families, one file each in this folder; architectures.cc registers
// them.

#include <memory>

#include "server/model/architecture.h"

namespace moeserve {

std::unique_ptr<Architecture> NewLlamaArchitecture();
std::unique_ptr<Architecture> NewQwen2Architecture();
std::unique_ptr<Architecture> NewQwen3Architecture();
std::unique_ptr<Architecture> NewQwen3MoeArchitecture();
std::unique_ptr<Architecture> NewMixtralArchitecture();
std::unique_ptr<Architecture> NewDeepseekV2Architecture();
std::unique_ptr<Architecture> NewDeepseekV3Architecture();

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_ARCH_FAMILIES_H_
