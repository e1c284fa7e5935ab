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
#include <string>
#include <vector>

#include "formats/core/error.h"
#include "formats/core/file_tree.h"
#include "formats/core/registry.h"

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
  for (const DirEntry& e : tree.list(dir)) {
    if (budget == 0) return;
    --budget;
    try {
      NodeStat st = tree.stat(e.stat.id);
      if (st.type == NodeType::kDirectory) exercise_tree(tree, e.stat.id, depth + 1, budget);
      else if (st.type == NodeType::kSymlink) (void)tree.readlink(e.stat.id);
      else if (st.type == NodeType::kRegular) {
        (void)tree.read(e.stat.id, 0, buf.data(), buf.size());
        if (st.size > buf.size()) (void)tree.read(e.stat.id, st.size - 1, buf.data(), 1);
      }
    } catch (const Error&) {
    }
  }
}

// Runs one input against `target` (a format name, a file system name, or
// "probe"). Returns normally for accepted and rejected inputs alike; aborts on
// a contract violation so the fuzzer reports it.
inline int run_fuzz_input(const std::string& target, const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  MemEnv env;
  env.add_file("dir/input", bytes);
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
      std::fprintf(stderr, "fuzz target '%s' names no registered format or file system\n", target.c_str());
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
