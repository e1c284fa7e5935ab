// The work every fuzz target does on one input, shared with the regression
// test that replays testdata/regress/ (tests/test_regress.cpp). The input is an
// image file; it is probed, opened from memory (MemEnv), its block status is
// walked, what it says is data is read (bounded), and info() is asked. Errors
// (vdisk::Error) are the expected outcome for bad input; crashes, hangs, leaks
// and huge allocations are the bugs.
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
#include "views/partition/partition_table.h"

namespace vdisk::fuzz {

constexpr size_t kMaxExtents = 4096;
constexpr uint64_t kMaxReadBytes = 4 << 20;

inline void exercise_device(const BlockDevice& dev) {
  (void)dev.info();
  const uint64_t size = dev.size();
  std::vector<uint8_t> buf(64 * 1024);
  uint64_t read_total = 0;
  uint64_t off = 0;
  for (size_t n = 0; n < kMaxExtents && off < size; ++n) {
    Extent e = dev.block_status(off, size - off);
    if (e.length == 0 || e.length > size - off) std::abort();  // contract violation
    if (e.type == ExtentType::kData && read_total < kMaxReadBytes) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(e.length, buf.size()));
      dev.read(off, buf.data(), len);
      read_total += len;
    }
    off += e.length;
  }
  // A read at the very end, and one past it (must throw, not crash).
  if (size > 0) dev.read(size - 1, buf.data(), 1);
  try {
    dev.read(size, buf.data(), 1);
    std::abort();  // reading past the end must fail
  } catch (const Error&) {
  }
}

inline void exercise_tree(const FileTree& tree, NodeId dir, int depth, size_t& budget) {
  if (depth > 16 || budget == 0) return;
  std::vector<uint8_t> buf(4096);
  std::vector<DirEntry> entries = tree.list(dir);
  (void)tree.skipped(dir);
  for (const DirEntry& e : entries) {
    if (budget == 0) return;
    --budget;
    try {
      NodeStat st = tree.stat(e.stat.id);
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
    if (p.offset > disk->size() || p.length > disk->size() - p.offset) std::abort();  // clipped
    if (!p.has_data()) continue;
    BlockDevicePtr part = partition::open_partition(disk, p, "input");
    if (part->size() != p.length) std::abort();
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
// "partition", or "probe"). Returns normally for accepted and rejected inputs alike; aborts on
// a contract violation so the fuzzer reports it.
inline int run_fuzz_input(const std::string& target, const uint8_t* raw, size_t raw_size) {
  std::vector<uint8_t> bytes = unpack_input(raw, raw_size);
  const uint8_t* data = bytes.data();
  const size_t size = bytes.size();
  MemEnv env;
  env.add_file("dir/input", std::move(bytes));
  OpenOptions opts;
  opts.env = &env;
  opts.warn = [](const std::string&) {};
  try {
    if (target == "probe") {
      std::unique_ptr<File> f = env.open_read("dir/input");
      (void)probe_file(*f);
      BlockDevicePtr dev = open_image("dir/input", "", opts);
      exercise_device(*dev);
      return 0;
    }
    if (target == "partition") {
      exercise_partitions(open_image("dir/input", "raw", opts));
      return 0;
    }
    for (const FileSystemDescriptor* fs : builtin_filesystems()) {
      if (fs->name != target) continue;
      BlockDevicePtr dev = open_image("dir/input", "raw", opts);
      if (fs->probe(*dev) <= 0) return 0;
      std::unique_ptr<FileTree> tree = fs->open(dev, "input");
      (void)tree->info();
      size_t budget = 2000;
      exercise_tree(*tree, tree->root(), 0, budget);
      return 0;
    }
    const FormatDescriptor* fmt = find_format(target);
    if (!fmt) {
      std::fprintf(stderr, "fuzz target '%s' names no registered format or file system\n",
                   target.c_str());
      std::abort();
    }
    ProbeInput in;
    in.path = "dir/input";
    in.file_size = size;
    in.head = std::span<const uint8_t>(data, std::min<size_t>(size, kProbeHeadBytes));
    in.tail = std::span<const uint8_t>(data + size - std::min<size_t>(size, kProbeTailBytes),
                                       std::min<size_t>(size, kProbeTailBytes));
    (void)fmt->probe(in);
    BlockDevicePtr dev = fmt->open(env.open_read("dir/input"), opts);
    exercise_device(*dev);
  } catch (const Error&) {
    // Rejecting bad input with an error is the expected outcome.
  }
  return 0;
}

}  // namespace vdisk::fuzz
