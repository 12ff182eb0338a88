// Loop devices for AttachVolume to the host instance (root only).
#pragma once

#include <string>

#include "base/result.h"

namespace amibake::emu {

// Returns true when this process may set up loop devices (effective uid 0 and
// /dev/loop-control present).
bool can_attach_loop();

// Attaches `file` read-write to a free loop device; returns "/dev/loopN".
Result<std::string> attach_loop(const std::string& file);

// Detaches `device` ("/dev/loopN"). A device that is already gone is fine.
Status detach_loop(const std::string& device);

// Returns the udev-style link name for a volume id: "vol-0abc" ->
// "nvme-Amazon_Elastic_Block_Store_vol0abc" (Amazon Linux's by-id naming).
std::string ebs_link_name(const std::string& volume_id);

}  // namespace amibake::emu
