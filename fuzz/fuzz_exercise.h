// The work every fuzz target does on one input, shared with the tests that
// replay inputs (tests/test_regress.cpp, tests/test_hostile.cpp). The input is
// an image file; it is probed, opened from memory (MemEnv), and the device is
// judged by check_device (device_contract.h): block status tiles the disk,
// answers agree, holes read as zeros, out-of-range requests are refused,
// info() answers. A vdisk::Error is the expected outcome for bad input; a
// broken promise (ContractViolation), a crash, a hang, a leak or a huge
// allocation is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/error.h"
#include "formats/core/file_tree.h"
#include "formats/registry.h"
#include "fuzz/device_contract.h"
#include "views/partition/partition_table.h"

namespace vdisk::fuzz {

// The device checks the fuzzer affords per input.
inline void exercise_device(const BlockDevice& dev) {
  check_device(dev, DeviceCheck{});
}

inline void exercise_tree(const FileTree& tree, NodeId dir, int depth, size_t& budget) {
  if (depth > 16 || budget == 0) return;
  std::vector<uint8_t> buf(4096);
  std::vector<DirEntry> entries = tree.list(dir);
  (void)tree.skipped(dir);
  if (depth == 0) {
    std::vector<DirEntry> system = tree.list_system(dir);
    entries.insert(entries.end(), system.begin(), system.end());
  }
  for (const DirEntry& e : entries) {
    if (budget == 0) return;
    --budget;
    try {
      NodeStat st = tree.stat(e.stat.id);
      (void)tree.details(e.stat.id).dump();
      for (const DirEntry& s : tree.streams(e.stat.id)) {
        if (s.stat.size > 0) (void)tree.read(s.stat.id, 0, buf.data(), buf.size());
      }
      if (st.type == NodeType::kRegular && st.size > 0) (void)tree.file_extent(e.stat.id, 0);
      if (st.type == NodeType::kDirectory)
        exercise_tree(tree, e.stat.id, depth + 1, budget);
      else if (st.type == NodeType::kSymlink)
        (void)tree.readlink(e.stat.id);
      else if (st.type == NodeType::kRegular) {
        (void)tree.read(e.stat.id, 0, buf.data(), buf.size());
        if (st.size > buf.size()) (void)tree.read(e.stat.id, st.size - 1, buf.data(), 1);
      }
    } catch (const Error&) {
    }
  }
}

// The partition table of the input read as a raw disk: MBR with its EBR chain,
// GPT (primary and backup); each partition found is opened as a slice and
// walked like any device.
inline void exercise_partitions(const BlockDevicePtr& disk) {
  partition::PartitionTable t = partition::read_partition_table(*disk, "input");
  (void)t.to_json().dump();
  for (const partition::Partition& p : t.partitions) {
    if (p.offset > disk->size() || p.length > disk->size() - p.offset)
      throw ContractViolation("partition at " + std::to_string(p.offset) + " of " +
                              std::to_string(p.length) + " bytes runs past the " +
                              std::to_string(disk->size()) + "-byte disk: not clipped");
    if (!p.has_data()) continue;
    BlockDevicePtr part = partition::open_partition(disk, p, "input");
    if (part->size() != p.length)
      throw ContractViolation("partition of " + std::to_string(p.length) + " bytes opened as " +
                              std::to_string(part->size()));
    exercise_device(*part);
  }
}

// Sparse inputs. Formats whose headers sit megabytes apart (VHDX: header
// section, log, metadata and BAT each 1 MiB-aligned) make huge seeds, and the
// fuzzer crawls through huge inputs. An input that starts with kPackMagic is
// therefore a packed image:
//   "VDFZPACK" (8 bytes), file size (u64 LE, at most kMaxPackedSize),
//   then records until the end: offset (u64 LE), length (u32 LE), bytes
// expanded into a zero-filled file; records are clipped to the file size, a
// truncated last record keeps what is there. Any other input is the image
// itself. pack_fuzz_input (fuzz/fuzz_pack.cpp) packs seeds this way.
inline constexpr char kPackMagic[8] = {'V', 'D', 'F', 'Z', 'P', 'A', 'C', 'K'};
inline constexpr uint64_t kMaxPackedSize = 32ull << 20;
inline constexpr uint64_t kFuzzDecodeLimit = 256ull << 20;

inline uint64_t pack_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

inline std::vector<uint8_t> unpack_input(const uint8_t* data, size_t size) {
  if (size < 16 || std::memcmp(data, kPackMagic, 8) != 0) return {data, data + size};
  const uint64_t file_size = std::min<uint64_t>(pack_le(data + 8, 8), kMaxPackedSize);
  std::vector<uint8_t> out(file_size);
  size_t pos = 16;
  while (pos + 12 <= size) {
    const uint64_t off = pack_le(data + pos, 8);
    uint64_t len = std::min<uint64_t>(pack_le(data + pos + 8, 4), size - pos - 12);
    pos += 12;
    if (off < file_size) std::memcpy(out.data() + off, data + pos, std::min(len, file_size - off));
    pos += len;
  }
  return out;
}

// Runs one input against `target` (a format name, a file system name,
// "partition", or "probe") and says what became of it (see judge()).
inline Outcome exercise_input(const std::string& target, const uint8_t* raw, size_t raw_size) {
  std::vector<uint8_t> bytes = unpack_input(raw, raw_size);
  const uint8_t* data = bytes.data();
  const size_t size = bytes.size();
  MemEnv env;
  env.add_file("dir/input", std::move(bytes));
  OpenOptions opts;
  opts.env = &env;
  opts.warn = [](const std::string&) {};
  // A 32 MiB packed gzip may rightly decode to 34 GB (a minute in a release
  // build, ten under ASan); that is the input's size, not a slow path, so the
  // fuzzer stops such opens at 256 MiB (a few seconds under ASan).
  opts.decode_limit = kFuzzDecodeLimit;
  return judge([&] {
    if (target == "probe") {
      std::unique_ptr<File> f = env.open_read("dir/input");
      (void)probe_file(*f);
      exercise_device(*open_image("dir/input", "", opts));
      return;
    }
    if (target == "partition") {
      exercise_partitions(open_image("dir/input", "raw", opts));
      return;
    }
    for (const FileSystemDescriptor* fs : builtin_filesystems()) {
      if (fs->name != target) continue;
      BlockDevicePtr dev = open_image("dir/input", "raw", opts);
      if (fs->probe(*dev) <= 0) {
        throw Error(ErrorKind::kNotThisFormat, "dir/input", std::nullopt,
                    "the " + fs->name + " probe does not recognise it");
      }
      std::unique_ptr<FileTree> tree = fs->open(dev, "input");
      (void)tree->info();
      size_t budget = 2000;
      exercise_tree(*tree, tree->root(), 0, budget);
      return;
    }
    const FormatDescriptor* fmt = find_format(target);
    if (!fmt)
      throw ContractViolation("fuzz target '" + target +
                              "' names no registered format or file system");
    ProbeInput in;
    in.path = "dir/input";
    in.file_size = size;
    in.head = std::span<const uint8_t>(data, std::min<size_t>(size, kProbeHeadBytes));
    in.tail = std::span<const uint8_t>(data + size - std::min<size_t>(size, kProbeTailBytes),
                                       std::min<size_t>(size, kProbeTailBytes));
    (void)fmt->probe(in);
    if (fmt->check) {
      // `vdisk check` reads the same hostile bytes: an Error is its answer,
      // anything else (a crash, a hang, a huge allocation) is a finding.
      CheckReport report;
      try {
        fmt->check(env.open_read("dir/input"), opts, report);
      } catch (const Error&) {
      }
    }
    exercise_device(*fmt->open(env.open_read("dir/input"), opts));
  });
}

// The libFuzzer entry point's form: aborts on a violation.
inline int run_fuzz_input(const std::string& target, const uint8_t* raw, size_t raw_size) {
  return fuzzer_verdict(target.c_str(), exercise_input(target, raw, raw_size));
}

}  // namespace vdisk::fuzz
