// Names of partition type codes, as fdisk/sfdisk (MBR) and sgdisk (GPT) show
// them, for `vdisk info` and the mount's info.json.
#pragma once

#include <cstdint>
#include <string>

namespace vdisk::partition {

// "Linux" for 0x83; "unknown" for a code not in the table.
std::string mbr_type_name(uint8_t code);
// "Linux filesystem" for 0FC63DAF-8483-4772-8E79-3D69D8477DE4 (any case);
// "unknown" for a GUID not in the table.
std::string gpt_type_name(const std::string& type_guid);

}  // namespace vdisk::partition
