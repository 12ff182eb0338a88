#include "bake/variants.h"

namespace amibake::bake {
namespace {

// From the ECS developer guide, "Retrieving Amazon ECS-optimized AMI metadata".
// AL1 ("amazon-linux") is end-of-life but still published; it is the SysV layout
// the original hand-made AMI was built from, so it stays selectable.
constexpr Variant kVariants[] = {
    {"al2023", "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
     "ECS-optimized Amazon Linux 2023, x86_64"},
    {"al2023-arm64", "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
     "ECS-optimized Amazon Linux 2023, arm64"},
    {"al2023-gpu", "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id",
     "ECS GPU-optimized Amazon Linux 2023, x86_64"},
    {"al2023-neuron",
     "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id",
     "ECS-optimized Amazon Linux 2023 for Inferentia/Trainium (Neuron), x86_64"},
    {"al2", "/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id",
     "ECS-optimized Amazon Linux 2, x86_64"},
    {"al2-arm64", "/aws/service/ecs/optimized-ami/amazon-linux-2/arm64/recommended/image_id",
     "ECS-optimized Amazon Linux 2, arm64"},
    {"al2-gpu", "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id",
     "ECS GPU-optimized Amazon Linux 2, x86_64"},
    {"al2-kernel-5.10",
     "/aws/service/ecs/optimized-ami/amazon-linux-2/kernel-5.10/recommended/image_id",
     "ECS-optimized Amazon Linux 2 with kernel 5.10, x86_64"},
    {"al1", "/aws/service/ecs/optimized-ami/amazon-linux/recommended/image_id",
     "ECS-optimized Amazon Linux AMI (AL1, SysV init; end of life)"},
};

}  // namespace

std::span<const Variant> variants() { return kVariants; }

const Variant* find_variant(std::string_view name) {
  for (const auto& v : kVariants) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

std::string variant_names() {
  std::string out;
  for (const auto& v : kVariants) {
    if (!out.empty()) out += ", ";
    out += v.name;
  }
  return out;
}

}  // namespace amibake::bake
