// The ECS-optimized AMI families amibake knows by name, each mapped to the SSM
// public parameter Amazon publishes for its latest recommended image.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace amibake::bake {

struct Variant {
  std::string_view name;           // "al2023"
  std::string_view ssm_parameter;  // "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
  std::string_view description;    // "ECS-optimized Amazon Linux 2023, x86_64"
};

// The default variant's name ("al2023").
inline constexpr std::string_view kDefaultVariant = "al2023";

// Returns every known variant, default first.
std::span<const Variant> variants();

// Returns the variant named `name`, or nullptr.
const Variant* find_variant(std::string_view name);

// Returns "al2023, al2023-arm64, ..." for messages.
std::string variant_names();

}  // namespace amibake::bake
