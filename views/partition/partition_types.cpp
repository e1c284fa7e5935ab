#include "views/partition/partition_types.h"

#include <strings.h>

#include <utility>

namespace vdisk::partition {

std::string mbr_type_name(uint8_t code) {
  // The common system IDs, named as util-linux fdisk names them (its list
  // follows the de-facto registry of MBR partition types).
  static const std::pair<uint8_t, const char*> kNames[] = {
      {0x00, "Empty"},
      {0x01, "FAT12"},
      {0x04, "FAT16 <32M"},
      {0x05, "Extended"},
      {0x06, "FAT16"},
      {0x07, "HPFS/NTFS/exFAT"},
      {0x0b, "W95 FAT32"},
      {0x0c, "W95 FAT32 (LBA)"},
      {0x0e, "W95 FAT16 (LBA)"},
      {0x0f, "W95 Ext'd (LBA)"},
      {0x11, "Hidden FAT12"},
      {0x12, "Compaq diagnostics"},
      {0x14, "Hidden FAT16 <32M"},
      {0x16, "Hidden FAT16"},
      {0x17, "Hidden HPFS/NTFS"},
      {0x1b, "Hidden W95 FAT32"},
      {0x1c, "Hidden W95 FAT32 (LBA)"},
      {0x1e, "Hidden W95 FAT16 (LBA)"},
      {0x27, "Hidden NTFS WinRE"},
      {0x42, "SFS"},
      {0x82, "Linux swap / Solaris"},
      {0x83, "Linux"},
      {0x85, "Linux extended"},
      {0x8e, "Linux LVM"},
      {0xa5, "FreeBSD"},
      {0xa6, "OpenBSD"},
      {0xa8, "Darwin UFS"},
      {0xa9, "NetBSD"},
      {0xaf, "HFS / HFS+"},
      {0xee, "GPT"},
      {0xef, "EFI (FAT-12/16/32)"},
      {0xfb, "VMware VMFS"},
      {0xfc, "VMware VMKCORE"},
      {0xfd, "Linux raid autodetect"},
  };
  for (const auto& [c, name] : kNames) {
    if (c == code) return name;
  }
  return "unknown";
}

std::string gpt_type_name(const std::string& type_guid) {
  // UEFI specification 2.10 section 5.3.3 (unused entry, EFI System, legacy
  // MBR); the others as their owners publish them (Microsoft's
  // PARTITION_INFORMATION_GPT, the Discoverable Partitions Specification,
  // Apple, FreeBSD), named as sgdisk names them.
  static const std::pair<const char*, const char*> kNames[] = {
      {"00000000-0000-0000-0000-000000000000", "unused"},
      {"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI system partition"},
      {"024DEE41-33E7-11D3-9D69-0008C781F39F", "MBR partition scheme"},
      {"21686148-6449-6E6F-744E-656564454649", "BIOS boot partition"},
      {"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "Microsoft basic data"},
      {"E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"},
      {"DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "Windows RE"},
      {"5808C8AA-7E8F-42E0-85D2-E1E90434CFB3", "Windows LDM metadata"},
      {"AF9B60A0-1431-4F62-BC68-3311714A69AD", "Windows LDM data"},
      {"0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"},
      {"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"},
      {"E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"},
      {"A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"},
      {"933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux /home"},
      {"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux x86-64 root (/)"},
      {"CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"},
      {"48465300-0000-11AA-AA11-00306543ECAC", "Apple HFS/HFS+"},
      {"7C3457EF-0000-11AA-AA11-00306543ECAC", "Apple APFS"},
      {"516E7CB6-6ECF-11D6-8FF8-00022D09712B", "FreeBSD UFS"},
      {"824CC7A0-36A8-11E3-890A-952519AD3F61", "OpenBSD disklabel"},
  };
  for (const auto& [guid, name] : kNames) {
    if (strcasecmp(guid, type_guid.c_str()) == 0) return name;
  }
  return "unknown";
}

}  // namespace vdisk::partition
